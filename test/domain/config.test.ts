import { describe, expect, it } from '@jest/globals';
import { ConfigError, parseConfig } from '../../src/domain/config.ts';
import { generateCodecKey } from '../../src/temporal/codec.ts';

const key = generateCodecKey();
const secretsKey = `s=${generateCodecKey()}`;

describe('parseConfig', () => {
  it('fills local defaults', () => {
    const c = parseConfig({ ICN_CODEC_KEYS: `dev=${key}`, ICN_SECRETS_KEYS: secretsKey });
    expect(c.temporal).toEqual({ address: '127.0.0.1:7233', namespace: 'icn' });
    expect(c.codec.activeKeyId).toBe('dev');
    expect(c.api.port).toBe(8090);
    expect(c.taskQueue).toBe('icn-global');
  });

  it('reads the worker capacity options that are set, and only those', () => {
    const base = { ICN_CODEC_KEYS: `dev=${key}`, ICN_SECRETS_KEYS: secretsKey };
    expect(parseConfig(base).workerTuning).toEqual({});
    const c = parseConfig({
      ...base,
      ICN_WORKER_MAX_CONCURRENT_ACTIVITY_TASK_EXECUTIONS: '2000',
      ICN_WORKER_MAX_CACHED_WORKFLOWS: '4000',
    });
    expect(c.workerTuning).toEqual({ maxConcurrentActivityTaskExecutions: 2000, maxCachedWorkflows: 4000 });
    expect(() => parseConfig({ ...base, ICN_WORKER_MAX_CONCURRENT_WORKFLOW_TASK_POLLS: '1' })).toThrow(
      /ICN_WORKER_MAX_CONCURRENT_WORKFLOW_TASK_POLLS/,
    );
    // 0 is a value (no deadlock watchdog), not an absent one.
    expect(parseConfig({ ...base, ICN_WORKER_WORKFLOW_DEADLOCK_TIMEOUT_MS: '0' }).workerTuning).toEqual({
      isolateExecutionTimeout: 0,
    });
    expect(() => parseConfig({ ...base, ICN_WORKER_WORKFLOW_DEADLOCK_TIMEOUT_MS: '-1' })).toThrow(
      /ICN_WORKER_WORKFLOW_DEADLOCK_TIMEOUT_MS/,
    );
    expect(parseConfig({ ...base, ICN_WORKER_NON_STICKY_TO_STICKY_POLL_RATIO: '0.5' }).workerTuning).toEqual({
      nonStickyToStickyPollRatio: 0.5,
    });
    for (const ratio of ['0', '1.5']) {
      expect(() => parseConfig({ ...base, ICN_WORKER_NON_STICKY_TO_STICKY_POLL_RATIO: ratio })).toThrow(
        /ICN_WORKER_NON_STICKY_TO_STICKY_POLL_RATIO/,
      );
    }
  });

  it('reads tokens with scopes and a rotated key set', () => {
    const c = parseConfig({
      ICN_CODEC_KEYS: `new=${key},old=${generateCodecKey()}`,
      ICN_SECRETS_KEYS: secretsKey,
      ICN_API_TOKENS: 'abcdefghijklmnop0123=read|operate',
      TEMPORAL_TLS: 'true',
    });
    expect(Object.keys(c.codec.keys)).toEqual(['new', 'old']);
    expect(c.api.tokens.get('abcdefghijklmnop0123')).toEqual(['read', 'operate']);
    expect(c.temporal.tls).toEqual({});
  });

  it.each([
    [{ ICN_CODEC_KEYS: `dev=${key}`, ICN_SECRETS_KEYS: secretsKey, ICN_API_PORT: 'eighty' }, /ICN_API_PORT/],
    [{ ICN_CODEC_KEYS: 'dev=c2hvcnQ=', ICN_SECRETS_KEYS: secretsKey }, /ICN_CODEC_KEYS: key "dev" must be 32 bytes/],
    [{}, /ICN_CODEC_KEYS/],
    [{ ICN_CODEC_KEYS: `dev=${key}` }, /ICN_SECRETS_KEYS/],
    [{ ICN_CODEC_KEYS: `dev=${key}`, ICN_SECRETS_KEYS: secretsKey, DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
    [
      { ICN_CODEC_KEYS: `dev=${key}`, ICN_SECRETS_KEYS: secretsKey, ICN_CODEC_ACTIVE_KEY: 'other' },
      /ICN_CODEC_ACTIVE_KEY/,
    ],
    [
      { ICN_CODEC_KEYS: `dev=${key}`, ICN_SECRETS_KEYS: secretsKey, TEMPORAL_ADDRESS: 'nohost' },
      /TEMPORAL_ADDRESS: must be host:port/,
    ],
    [{ ICN_CODEC_KEYS: `dev=${key}`, ICN_SECRETS_KEYS: secretsKey, ICN_API_TOKENS: 'short=read' }, /ICN_API_TOKENS/],
    [
      { ICN_CODEC_KEYS: `dev=${key}`, ICN_SECRETS_KEYS: secretsKey, ICN_API_TOKENS: 'abcdefghijklmnop0123=root' },
      /ICN_API_TOKENS: scopes/,
    ],
    [
      { ICN_CODEC_KEYS: `dev=${key}`, ICN_SECRETS_KEYS: secretsKey, TEMPORAL_TLS_CERT_FILE: '/c.pem' },
      /TEMPORAL_TLS_KEY_FILE/,
    ],
  ])('names the wrong variable: %j', (env, message) => {
    expect(() => parseConfig(env)).toThrow(ConfigError);
    expect(() => parseConfig(env)).toThrow(message);
  });

  it('never echoes a secret value in its error', () => {
    const leaked = 'supersecrettokenvalue';
    expect(() =>
      parseConfig({ ICN_CODEC_KEYS: `dev=${key}`, ICN_SECRETS_KEYS: secretsKey, ICN_API_TOKENS: `${leaked}=root` }),
    ).toThrow(expect.objectContaining({ message: expect.not.stringContaining(leaked) as unknown }));
  });
});
