/**
 * The BPA's artifact cache: content-addressed files (ArtifactFiles) plus resumable uploads. An upload appends chunks
 * to `uploads/<sha256>.part` at the offset the BPA reports; only when the last byte has landed is the whole file
 * checked against the declared sha256 and made visible, so a broken or forged upload never is. A chunk cut off
 * mid-way keeps what arrived: the uploader asks for the offset and goes on from there.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ArtifactSpec } from '../domain/artifact.ts';
import { BpaArtifact, type UploadStatus } from '../domain/bpa.ts';
import { ArtifactFiles } from '../store/artifact-files.ts';
import { StoreError } from '../store/errors.ts';
import { Limiter } from '../clients/ssh/limiter.ts';

/** An upload's chunk does not start where the BPA stands: the uploader should resume from `offset`. */
export class OffsetMismatch extends Error {
  override name = 'OffsetMismatch';
  readonly offset: number;
  constructor(offset: number, start: number) {
    super(`the upload is at byte ${offset}, not ${start}: resume from ${offset}`);
    this.offset = offset;
  }
}

export class ArtifactCache {
  readonly files: ArtifactFiles;
  readonly #index: string;
  readonly #uploads: string;
  readonly #locks = new Map<string, Limiter>();
  /** Small artifacts kept in memory to be sent to many hosts from one copy. */
  readonly #buffers = new Map<string, Promise<Buffer>>();
  readonly #maxBytes: number;

  constructor(root: string, maxBytes: number) {
    this.files = new ArtifactFiles(root, maxBytes);
    this.#index = join(root, 'index');
    this.#uploads = join(root, 'uploads');
    this.#maxBytes = maxBytes;
  }

  async init(): Promise<void> {
    await mkdir(this.#index, { recursive: true });
    await mkdir(this.#uploads, { recursive: true });
  }

  async list(): Promise<BpaArtifact[]> {
    const names = (await readdir(this.#index)).filter((n) => n.endsWith('.json'));
    const items = await Promise.all(names.map((n) => this.get(n.slice(0, -5))));
    return items.filter((a) => a !== undefined).sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(sha256: string): Promise<BpaArtifact | undefined> {
    const raw = await readFile(join(this.#index, `${sha256}.json`), 'utf8').catch(() => undefined);
    return raw === undefined ? undefined : BpaArtifact.parse(JSON.parse(raw));
  }

  async status(sha256: string): Promise<UploadStatus | undefined> {
    const artifact = await this.get(sha256);
    if (artifact) return { sha256, size: artifact.size, offset: artifact.size, complete: true };
    const declared = await this.#declared(sha256);
    if (!declared) return undefined;
    return { sha256, size: declared.size, offset: await this.#partSize(sha256), complete: false };
  }

  /**
   * Appends `body` at `start` to the upload of `spec` (created on its first chunk). Returns where it stands; the
   * chunk that brings it to `spec.size` verifies and publishes it, or throws (StoreError on field `sha256`) and
   * discards it so that the next attempt starts over.
   */
  async append(spec: ArtifactSpec, start: number, body: Readable): Promise<UploadStatus> {
    return this.#locked(spec.sha256, async () => {
      const existing = await this.get(spec.sha256);
      if (existing) {
        body.resume();
        return { sha256: spec.sha256, size: existing.size, offset: existing.size, complete: true };
      }
      if (spec.size > this.#maxBytes) {
        body.resume();
        throw new StoreError('Invalid', `size ${spec.size} exceeds the limit of ${this.#maxBytes} bytes`, 'size');
      }
      const declared = await this.#declared(spec.sha256);
      if (declared && (declared.size !== spec.size || declared.name !== spec.name || declared.type !== spec.type)) {
        body.resume();
        throw new StoreError(
          'Conflict',
          `an upload of ${spec.sha256} as ${declared.type} ${declared.name} ${declared.version} (${declared.size} bytes) is under way`,
        );
      }
      if (!declared) await writeFile(this.#declaredPath(spec.sha256), JSON.stringify(spec));
      const offset = await this.#partSize(spec.sha256);
      if (start !== offset) {
        body.resume();
        throw new OffsetMismatch(offset, start);
      }
      let written = offset;
      const limit = spec.size;
      const meter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          if (written + chunk.length > limit) {
            done(new StoreError('Invalid', `content is longer than the declared size ${limit}`, 'size'));
            return;
          }
          written += chunk.length;
          done(null, chunk);
        },
      });
      try {
        await pipeline(body, meter, createWriteStream(this.#partPath(spec.sha256), { flags: 'a', mode: 0o640 }));
      } catch (err) {
        // What landed before the break stays: the uploader resumes from the offset.
        if (err instanceof StoreError) throw err;
        throw new StoreError('Invalid', `the upload broke off at byte ${await this.#partSize(spec.sha256)}`);
      }
      if (written < spec.size) return { sha256: spec.sha256, size: spec.size, offset: written, complete: false };
      try {
        await this.files.put(createReadStream(this.#partPath(spec.sha256)), { sha256: spec.sha256, size: spec.size });
      } catch (err) {
        await this.#discardUpload(spec.sha256);
        throw err;
      }
      const artifact: BpaArtifact = { ...ArtifactSpec.parse(spec), createdAt: new Date().toISOString() };
      const tmp = join(this.#index, `.${spec.sha256}.tmp`);
      await writeFile(tmp, JSON.stringify(artifact));
      await rename(tmp, join(this.#index, `${spec.sha256}.json`));
      await this.#discardUpload(spec.sha256);
      return { sha256: spec.sha256, size: spec.size, offset: spec.size, complete: true };
    });
  }

  /** Removes an artifact or an unfinished upload of it; false when there was neither. */
  async delete(sha256: string): Promise<boolean> {
    return this.#locked(sha256, async () => {
      const had = (await this.get(sha256)) !== undefined || (await this.#declared(sha256)) !== undefined;
      await rm(join(this.#index, `${sha256}.json`), { force: true });
      await this.files.remove(sha256);
      await this.#discardUpload(sha256);
      this.#buffers.delete(sha256);
      return had;
    });
  }

  pathOf(sha256: string): string {
    return this.files.pathOf(sha256);
  }

  /**
   * The artifact's bytes, read once and shared by every host it is sent to; released by `release` when the job
   * that needed it ends.
   */
  async buffer(sha256: string): Promise<Buffer> {
    let buffer = this.#buffers.get(sha256);
    if (!buffer) {
      buffer = readFile(this.pathOf(sha256));
      this.#buffers.set(sha256, buffer);
      buffer.catch(() => this.#buffers.delete(sha256));
    }
    return buffer;
  }

  release(sha256: string): void {
    this.#buffers.delete(sha256);
  }

  async #locked<T>(sha256: string, run: () => Promise<T>): Promise<T> {
    let lock = this.#locks.get(sha256);
    if (!lock) {
      lock = new Limiter(1);
      this.#locks.set(sha256, lock);
    }
    const release = await lock.acquire();
    try {
      return await run();
    } finally {
      release();
      if (lock.unused) this.#locks.delete(sha256);
    }
  }

  #partPath(sha256: string): string {
    return join(this.#uploads, `${sha256}.part`);
  }

  #declaredPath(sha256: string): string {
    return join(this.#uploads, `${sha256}.json`);
  }

  async #declared(sha256: string): Promise<ArtifactSpec | undefined> {
    const raw = await readFile(this.#declaredPath(sha256), 'utf8').catch(() => undefined);
    return raw === undefined ? undefined : ArtifactSpec.parse(JSON.parse(raw));
  }

  async #partSize(sha256: string): Promise<number> {
    return stat(this.#partPath(sha256)).then(
      (s) => s.size,
      () => 0,
    );
  }

  async #discardUpload(sha256: string): Promise<void> {
    await rm(this.#partPath(sha256), { force: true });
    await rm(this.#declaredPath(sha256), { force: true });
  }
}
