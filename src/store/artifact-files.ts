import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { StoreError } from './errors.ts';

/**
 * Content-addressed files: `<root>/sha256/ab/<digest>`. An upload streams to a temporary file while it is hashed and
 * counted; only a complete upload whose digest and size match the declared ones is renamed into place, so a broken
 * or forged upload is never visible, and the same content is stored once.
 */
export class ArtifactFiles {
  readonly root: string;
  private readonly maxBytes: number;

  constructor(root: string, maxBytes: number) {
    this.root = root;
    this.maxBytes = maxBytes;
  }

  pathOf(sha256: string): string {
    return join(this.root, 'sha256', sha256.slice(0, 2), sha256);
  }

  async put(body: Readable, expected: { sha256: string; size: number }): Promise<{ stored: boolean }> {
    if (expected.size > this.maxBytes) {
      body.resume();
      throw new StoreError('Invalid', `size ${expected.size} exceeds the limit of ${this.maxBytes} bytes`, 'size');
    }
    const tmpDir = join(this.root, 'tmp');
    await mkdir(tmpDir, { recursive: true });
    const tmp = join(tmpDir, randomUUID());
    const hash = createHash('sha256');
    let size = 0;
    const limit = expected.size;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > limit) {
          done(new StoreError('Invalid', `content is longer than the declared size ${limit}`, 'size'));
          return;
        }
        hash.update(chunk);
        done(null, chunk);
      },
    });
    try {
      await pipeline(body, meter, createWriteStream(tmp, { flags: 'wx', mode: 0o640 }));
      if (size !== expected.size) {
        throw new StoreError('Invalid', `content has ${size} bytes, the declared size is ${expected.size}`, 'size');
      }
      const digest = hash.digest('hex');
      if (digest !== expected.sha256) {
        throw new StoreError('Invalid', `content sha256 is ${digest}, not the declared ${expected.sha256}`, 'sha256');
      }
      const target = this.pathOf(digest);
      if (await exists(target)) {
        await rm(tmp, { force: true });
        return { stored: false };
      }
      await mkdir(join(this.root, 'sha256', digest.slice(0, 2)), { recursive: true });
      await rename(tmp, target);
      return { stored: true };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  /** A read stream of the whole file or of an inclusive byte range. */
  open(sha256: string, range?: { start: number; end: number }): ReadStream {
    return createReadStream(this.pathOf(sha256), range);
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
