import { z } from 'zod';
import { apiVersion, ObjectMeta } from './meta.ts';

export const SecretType = z.enum(['bmc-credentials', 'ssh-key', 'kubeconfig', 'token']);
export type SecretType = z.infer<typeof SecretType>;

const required: Record<SecretType, string[]> = {
  'bmc-credentials': ['username', 'password'],
  'ssh-key': ['privateKey'],
  kubeconfig: ['kubeconfig'],
  token: ['token'],
};

/** Written by operators, stored encrypted, never returned: reads show only the type and the names of its keys. */
export const Secret = z
  .strictObject({
    apiVersion: z.literal(apiVersion),
    kind: z.literal('Secret'),
    metadata: ObjectMeta,
    type: SecretType,
    stringData: z.record(z.string().max(253), z.string().max(256 * 1024)),
  })
  .superRefine((secret, ctx) => {
    for (const key of required[secret.type]) {
      if (!(key in secret.stringData)) {
        ctx.addIssue({ code: 'custom', path: ['stringData', key], message: `is required for a ${secret.type} secret` });
      }
    }
  });
export type Secret = z.infer<typeof Secret>;

/** The only view of a Secret the API ever returns. */
export const SecretSummary = z.object({
  apiVersion: z.literal(apiVersion),
  kind: z.literal('Secret'),
  metadata: ObjectMeta,
  type: SecretType,
  keys: z.array(z.string()),
});
export type SecretSummary = z.infer<typeof SecretSummary>;
