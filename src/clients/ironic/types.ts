/** The parts of Ironic's JSON this project reads, parsed with zod so that a server surprise fails loudly here. */
import { z } from 'zod';

const record = z.record(z.string(), z.unknown());

export const nodeSchema = z.object({
  uuid: z.string(),
  name: z.string().nullable(),
  driver: z.string(),
  provision_state: z.string(),
  target_provision_state: z.string().nullable(),
  power_state: z.string().nullable(),
  target_power_state: z.string().nullable(),
  last_error: z.string().nullable(),
  maintenance: z.boolean(),
  maintenance_reason: z.string().nullable(),
  /** The conductor holding the node's lock, if any. */
  reservation: z.string().nullable(),
  driver_info: record,
  instance_info: record,
  properties: record,
  boot_interface: z.string().nullable().optional(),
  deploy_interface: z.string().nullable().optional(),
  inspect_interface: z.string().nullable().optional(),
  power_interface: z.string().nullable().optional(),
  management_interface: z.string().nullable().optional(),
});

/** A node as the client returns it: driver_info credentials are masked. */
export type IronicNode = z.infer<typeof nodeSchema>;

export const portSchema = z.object({
  uuid: z.string(),
  address: z.string(),
  node_uuid: z.string(),
  pxe_enabled: z.boolean().optional(),
});
export type IronicPort = z.infer<typeof portSchema>;

export const portListSchema = z.object({ ports: z.array(portSchema) });

export const versionsSchema = z.object({
  default_version: z.object({ version: z.string(), min_version: z.string() }),
});

/** Fields requested on every node read: enough for state decisions, nothing heavy (no clean steps, no links). */
export const nodeFields = Object.keys(nodeSchema.shape).join(',');

/** The interfaces a node can be enrolled with; unset ones take the hardware type's defaults. */
export interface NodeInterfaces {
  boot_interface?: string;
  deploy_interface?: string;
  inspect_interface?: string;
  management_interface?: string;
  power_interface?: string;
  network_interface?: string;
  raid_interface?: string;
  vendor_interface?: string;
  bios_interface?: string;
  console_interface?: string;
  rescue_interface?: string;
  storage_interface?: string;
}

/** Ironic's stable provision states this client waits for. */
export type StableProvisionState = 'enroll' | 'manageable' | 'available' | 'active';
export type PowerTarget = 'power on' | 'power off' | 'rebooting';
