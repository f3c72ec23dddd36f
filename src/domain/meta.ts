import { z } from 'zod';
import { ResourceName } from './names.ts';

export const apiVersion = 'icn.akraino.org/v1alpha1' as const;

/** Semantic version, as semver.org defines it; a leading "v" is accepted because Kubernetes writes v1.34.2. */
export const SemVer = z
  .string()
  .regex(
    /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/,
    'must be a semantic version such as 1.2.3 or v1.34.2',
  );

const labelKey = z
  .string()
  .max(253)
  .regex(/^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, 'must be a label key');
const labelValue = z
  .string()
  .max(63)
  .regex(/^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/, 'must be a label value');

export const Labels = z.record(labelKey, labelValue);
export type Labels = z.infer<typeof Labels>;

/** What an operator writes; the server fills the rest (resourceVersion on reads, for optimistic concurrency). */
export const ObjectMeta = z.strictObject({
  name: ResourceName,
  labels: Labels.optional(),
  annotations: z.record(z.string().max(253), z.string().max(4096)).optional(),
  /** On update: the version the writer read; a stale one is refused (409) instead of overwriting. */
  resourceVersion: z.string().regex(/^\d+$/).optional(),
  uid: z.uuid().optional(),
  creationTimestamp: z.string().optional(),
});
export type ObjectMeta = z.infer<typeof ObjectMeta>;

/** A reference to a Secret by name; secrets travel by reference and are decrypted only where used. */
export const SecretRef = z.strictObject({ name: ResourceName });
export type SecretRef = z.infer<typeof SecretRef>;

/** sha256 of an artifact's content, the artifact's identity. */
export const Sha256 = z.string().regex(/^[a-f0-9]{64}$/, 'must be a lowercase hex sha256 digest');
