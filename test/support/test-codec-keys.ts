/**
 * Test-only codec keys. The recorded histories under test/workflows/histories were encrypted with them, so replay
 * tests need them; they protect nothing but test data and are never used outside test/.
 */
export const testCodecKeys = {
  keys: {
    'test-2026-a': 'dGVzdC1vbmx5LWtleS1hLW5vdC1hLXNlY3JldC0wMDA=',
    'test-2026-b': 'dGVzdC1vbmx5LWtleS1iLW5vdC1hLXNlY3JldC0wMDA=',
  },
  activeKeyId: 'test-2026-a',
};

/** The environment of an API or worker under test: test keys, the given tokens, nothing else required. */
export function testEnv(extra: Record<string, string> = {}): Record<string, string> {
  const keyList = Object.entries(testCodecKeys.keys)
    .map(([id, key]) => `${id}=${key}`)
    .join(',');
  return { ICN_CODEC_KEYS: keyList, ICN_SECRETS_KEYS: keyList, ...extra };
}
