/**
 * Secrets of the local dev stack only: a codec key and an admin API token, generated once into data/dev/secrets.env
 * (mode 0600, git-ignored) so that histories written by earlier runs stay readable. Production gets its own from its
 * secret store.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { generateCodecKey } from '../../src/temporal/codec.ts';

export function loadOrCreateDevSecrets(file: string): Record<string, string> {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    const keyId = `dev-${new Date().toISOString().slice(0, 10)}`;
    const token = randomBytes(24).toString('base64url');
    writeFileSync(file, `ICN_CODEC_KEYS=${keyId}=${generateCodecKey()}\nICN_API_TOKENS=${token}=admin\n`, {
      mode: 0o600,
    });
  }
  return Object.fromEntries(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}
