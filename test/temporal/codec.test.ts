import { describe, expect, it } from '@jest/globals';
import { defaultPayloadConverter } from '@temporalio/common';
import { AesGcmPayloadCodec, generateCodecKey, KEY_ID_KEY } from '../../src/temporal/codec.ts';

const k1 = generateCodecKey();
const k2 = generateCodecKey();
const secret = { bmcPassword: 'hunter2-do-not-leak' };
const clear = () => [defaultPayloadConverter.toPayload(secret)];

describe('AesGcmPayloadCodec', () => {
  it('round-trips a payload and hides its bytes', async () => {
    const codec = new AesGcmPayloadCodec({ keys: { k1 }, activeKeyId: 'k1' });
    const [encoded] = await codec.encode(clear());
    expect(Buffer.from(encoded?.data ?? []).includes('hunter2')).toBe(false);
    expect(new TextDecoder().decode(encoded?.metadata?.[KEY_ID_KEY])).toBe('k1');
    const [decoded] = await codec.decode([encoded!]);
    expect(defaultPayloadConverter.fromPayload(decoded!)).toEqual(secret);
  });

  it('reads payloads written under a rotated-out key', async () => {
    const before = new AesGcmPayloadCodec({ keys: { k1 }, activeKeyId: 'k1' });
    const after = new AesGcmPayloadCodec({ keys: { k2, k1 }, activeKeyId: 'k2' });
    const old = await before.encode(clear());
    const fresh = await after.encode(clear());
    expect(new TextDecoder().decode(fresh[0]?.metadata?.[KEY_ID_KEY])).toBe('k2');
    for (const p of [...(await after.decode(old)), ...(await after.decode(fresh))]) {
      expect(defaultPayloadConverter.fromPayload(p)).toEqual(secret);
    }
  });

  it('refuses a tampered payload and an unknown key', async () => {
    const codec = new AesGcmPayloadCodec({ keys: { k1 }, activeKeyId: 'k1' });
    const [encoded] = await codec.encode(clear());
    const tampered = Buffer.from(encoded!.data!);
    tampered[20] = (tampered[20] ?? 0) ^ 0xff;
    await expect(codec.decode([{ ...encoded, data: tampered }])).rejects.toThrow(/auth/i);
    const other = new AesGcmPayloadCodec({ keys: { k2 }, activeKeyId: 'k2' });
    await expect(other.decode([encoded!])).rejects.toThrow(/unknown codec key "k1"/);
  });

  it('passes through payloads that were never encrypted', async () => {
    const codec = new AesGcmPayloadCodec({ keys: { k1 }, activeKeyId: 'k1' });
    expect(await codec.decode(clear())).toEqual(clear());
  });
});
