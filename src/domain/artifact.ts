import { z } from 'zod';
import { apiVersion, Sha256, SemVer } from './meta.ts';
import { ResourceName } from './names.ts';

export const ArtifactType = z.enum(['os-image', 'binary-package', 'helm-chart']);
export type ArtifactType = z.infer<typeof ArtifactType>;

/** What an uploader declares; the store checks the content against `sha256` before the artifact becomes visible. */
export const ArtifactSpec = z.strictObject({
  type: ArtifactType,
  name: ResourceName,
  version: SemVer,
  sha256: Sha256,
  size: z.number().int().nonnegative(),
  metadata: z.record(z.string().max(128), z.string().max(1024)).default({}),
});
export type ArtifactSpec = z.infer<typeof ArtifactSpec>;

export const Artifact = z.strictObject({
  apiVersion: z.literal(apiVersion),
  kind: z.literal('Artifact'),
  metadata: z.strictObject({ name: z.string(), creationTimestamp: z.string().optional() }),
  spec: ArtifactSpec,
});
export type Artifact = z.infer<typeof Artifact>;

/** How a profile names an artifact: by its content digest, the only identity that cannot drift. */
export const ArtifactRef = z.strictObject({ sha256: Sha256 });
export type ArtifactRef = z.infer<typeof ArtifactRef>;

/** Free-form metadata as a query parameter: a JSON object of strings, e.g. {"arch":"amd64"}. */
export const ArtifactMetadataQuery = z
  .string()
  .max(8192)
  .transform((s, ctx) => {
    try {
      return JSON.parse(s) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be a JSON object' });
      return z.NEVER;
    }
  })
  .pipe(ArtifactSpec.shape.metadata);
