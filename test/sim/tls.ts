/**
 * The simulated sites' serving certificate. The Kubernetes client speaks HTTPS only (node:https whatever the
 * kubeconfig's scheme), so the simulated API servers need one: a self-signed EC P-256 certificate for 127.0.0.1 that
 * the kubeconfigs carry as their CA. node:crypto makes keys but no X.509 certificates, hence openssl.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SimCertificate {
  cert: string;
  key: string;
}

export function selfSignedCertificate(): SimCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'icn-sim-tls-'));
  try {
    const certFile = join(dir, 'sim.crt');
    const keyFile = join(dir, 'sim.key');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        certFile,
        '-days',
        '7',
        '-subj',
        '/CN=icn-sim-sites',
        '-addext',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
