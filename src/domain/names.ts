import { z } from 'zod';

/** A site or host name: a DNS-1123 label, because it becomes a Kubernetes object name and a task-queue suffix. */
export const ResourceName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS-1123 label: lowercase letters, digits and -');
export type ResourceName = z.infer<typeof ResourceName>;
