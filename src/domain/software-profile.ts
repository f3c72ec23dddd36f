import { z } from 'zod';
import { ArtifactRef } from './artifact.ts';
import { apiVersion, ObjectMeta, SemVer } from './meta.ts';
import { ResourceName } from './names.ts';

/** A command run on a host by the BPA; a string for sh -c, kept short so it stays reviewable. */
const HostCommand = z.string().min(1).max(4096);

/** What the BPA installs over SSH: drivers, container runtime, kubelet and kubeadm, OVS, agents. */
export const BinaryPackage = z.strictObject({
  name: ResourceName,
  version: SemVer,
  artifact: ArtifactRef,
  install: HostCommand,
  verify: HostCommand,
  rollback: HostCommand.optional(),
  rebootRequired: z.boolean().default(false),
});
export type BinaryPackage = z.infer<typeof BinaryPackage>;

/** A Helm chart installed by KPM into the application cluster. */
export const ContainerPackage = z.strictObject({
  name: ResourceName,
  version: SemVer,
  chart: ArtifactRef,
  namespace: ResourceName.default('default'),
  values: z.record(z.string(), z.unknown()).default({}),
});
export type ContainerPackage = z.infer<typeof ContainerPackage>;

/** Adds an issue naming each later duplicate of a name in `list` (refinements of profiles and BPA jobs). */
export function uniqueNames(list: { name: string }[], field: string, ctx: z.RefinementCtx): void {
  const seen = new Map<string, number>();
  list.forEach((item, i) => {
    const first = seen.get(item.name);
    if (first !== undefined) {
      ctx.addIssue({ code: 'custom', path: [field, i, 'name'], message: `duplicates ${field}[${first}].name` });
    } else seen.set(item.name, i);
  });
}

export const SoftwareProfileSpec = z
  .strictObject({
    /** Immutable per version: a change is a new version, so a site's installed profile always means one thing. */
    version: SemVer,
    osImage: ArtifactRef,
    binaryPackages: z.array(BinaryPackage).max(200).default([]),
    containerPackages: z.array(ContainerPackage).max(200).default([]),
  })
  .superRefine((spec, ctx) => {
    uniqueNames(spec.binaryPackages, 'binaryPackages', ctx);
    uniqueNames(spec.containerPackages, 'containerPackages', ctx);
  });
export type SoftwareProfileSpec = z.infer<typeof SoftwareProfileSpec>;

export const SoftwareProfile = z.strictObject({
  apiVersion: z.literal(apiVersion),
  kind: z.literal('SoftwareProfile'),
  metadata: ObjectMeta,
  spec: SoftwareProfileSpec,
});
export type SoftwareProfile = z.infer<typeof SoftwareProfile>;

export { profileArtifacts } from './profile-diff.ts';
