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
  const keyId = `dev-${new Date().toISOString().slice(0, 10)}`;
  const wanted: Record<string, () => string> = {
    ICN_CODEC_KEYS: () => `${keyId}=${generateCodecKey()}`,
    ICN_SECRETS_KEYS: () => `${keyId}=${generateCodecKey()}`,
    ICN_API_TOKENS: () => `${randomBytes(24).toString('base64url')}=admin`,
  };
  mkdirSync(dirname(file), { recursive: true });
  const current = existsSync(file) ? read(file) : {};
  // A file from an older release lacks newer entries: add them, never replace existing ones.
  const missing = Object.keys(wanted).filter((k) => !(k in current));
  if (missing.length > 0) {
    const lines = missing.map((k) => `${k}=${wanted[k]?.() ?? ''}`).join('\n');
    writeFileSync(file, `${existsSync(file) ? readFileSync(file, 'utf8') : ''}${lines}\n`, { mode: 0o600 });
  }
  return read(file);
}

function read(file: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}
