import { Writable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { redactedPaths } from '../../src/observability/logger.ts';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const logger = pino({ level: 'info', redact: { paths: redactedPaths, censor: '[redacted]' } }, stream);
  return { logger, text: () => lines.join('') };
}

describe('logger redaction', () => {
  it('hides secrets at the top level and one level down, keeping the rest', () => {
    const { logger, text } = capture();
    logger.info({
      host: 'edge-01-w1',
      password: 'bmc-pass-1',
      bmc: { address: 'redfish://10.0.0.9', password: 'bmc-pass-2' },
      ssh: { privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----xyz' },
      site: { kubeconfig: 'apiVersion: v1\nclusters: []', token: 'tok-123' },
      req: { headers: { authorization: 'Bearer abcdef' } },
    });
    const out = text();
    for (const secret of ['bmc-pass-1', 'bmc-pass-2', 'BEGIN OPENSSH', 'clusters: []', 'tok-123', 'Bearer abcdef']) {
      expect(out).not.toContain(secret);
    }
    expect(out).toContain('edge-01-w1');
    expect(out).toContain('redfish://10.0.0.9');
    expect(out.match(/\[redacted\]/g)?.length).toBe(6);
  });
});
