import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec, ValueError } from '@temporalio/common';
import proto from '@temporalio/proto';

// A CommonJS package: Node's ESM loader sees only its default export.
const { temporal } = proto;

export const ENCODING = 'binary/encrypted';
export const KEY_ID_KEY = 'encryption-key-id';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface CodecKeys {
  /** key id → 32-byte key, base64 */
  keys: Record<string, string>;
  /** The key new payloads are encrypted with; the others only decrypt. */
  activeKeyId: string;
}

/**
 * AES-256-GCM over the whole serialised payload (data and metadata), so that neither values nor their encodings reach
 * the server in clear. The key id travels in the outer metadata: rotating the active key leaves old histories readable
 * as long as the old key stays configured.
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  /** Key objects made once: a raw key given to every cipher is imported again each time (measured: half its CPU). */
  private readonly keys: Map<string, KeyObject>;
  private readonly activeKeyId: string;

  constructor(config: CodecKeys) {
    this.keys = new Map(
      Object.entries(config.keys).map(([id, b64]) => {
        const raw = Buffer.from(b64, 'base64');
        if (raw.length !== 32) throw new ValueError(`codec key "${id}" must be 32 bytes`);
        return [id, createSecretKey(raw)];
      }),
    );
    if (!this.keys.has(config.activeKeyId)) throw new ValueError(`active codec key "${config.activeKeyId}" is unknown`);
    this.activeKeyId = config.activeKeyId;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const key = this.keys.get(this.activeKeyId) as KeyObject;
    return payloads.map((payload) => {
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, nonce);
      const clear = temporal.api.common.v1.Payload.encode(payload).finish();
      const data = Buffer.concat([nonce, cipher.update(clear), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: {
          [METADATA_ENCODING_KEY]: encoder.encode(ENCODING),
          [KEY_ID_KEY]: encoder.encode(this.activeKeyId),
        },
        data,
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
      if (!encoding || decoder.decode(encoding) !== ENCODING) return payload;
      const keyIdBytes = payload.metadata?.[KEY_ID_KEY];
      if (!keyIdBytes) throw new ValueError('encrypted payload has no key id');
      const keyId = decoder.decode(keyIdBytes);
      const key = this.keys.get(keyId);
      if (!key) throw new ValueError(`payload encrypted with unknown codec key "${keyId}"`);
      const data = Buffer.from(payload.data ?? new Uint8Array());
      if (data.length < NONCE_BYTES + TAG_BYTES) throw new ValueError('encrypted payload is truncated');
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, NONCE_BYTES));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      const clear = Buffer.concat([
        decipher.update(data.subarray(NONCE_BYTES, data.length - TAG_BYTES)),
        decipher.final(),
      ]);
      return temporal.api.common.v1.Payload.decode(clear);
    });
  }
}

/** A fresh random 256-bit key, base64, for `ICN_CODEC_KEYS`. */
export function generateCodecKey(): string {
  return randomBytes(32).toString('base64');
}
