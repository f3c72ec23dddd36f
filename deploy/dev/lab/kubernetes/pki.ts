/**
 * The lab API server's certificates, made once with openssl and kept with the peer's data: a CA, the serving
 * certificate (127.0.0.1 and localhost), an admin client certificate in system:masters (all rights under RBAC) and
 * the service-account signing key pair. EC P-256 keys: quick to make, accepted by Go's TLS and helm alike.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

export function pkiFiles(dir: string): Pki {
  const f = (name: string): string => join(dir, name);
  return {
    dir,
    caCert: f('ca.crt'),
    caKey: f('ca.key'),
    serverCert: f('apiserver.crt'),
    serverKey: f('apiserver.key'),
    adminCert: f('admin.crt'),
    adminKey: f('admin.key'),
    serviceAccountKey: f('sa.key'),
    serviceAccountPub: f('sa.pub'),
  };
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0] ?? ''} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function signedBy(
  pki: Pki,
  name: string,
  subject: string,
  extensions: string,
  certFile: string,
  keyFile: string,
): void {
  const csr = join(pki.dir, `${name}.csr`);
  const ext = join(pki.dir, `${name}.ext`);
  writeFileSync(ext, extensions);
  openssl(['req', '-new', ...ecKey, '-keyout', keyFile, '-subj', subject, '-out', csr]);
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    pki.caCert,
    '-CAkey',
    pki.caKey,
    '-CAcreateserial',
    '-days',
    '3650',
    '-sha256',
    '-extfile',
    ext,
    '-out',
    certFile,
  ]);
  rmSync(csr);
  rmSync(ext);
}

/** Makes whatever is missing; an existing set is kept, so that kubeconfigs already handed out stay valid. */
export function ensurePki(dir: string): Pki {
  const pki = pkiFiles(dir);
  mkdirSync(dir, { recursive: true });
  if (!existsSync(pki.caCert) || !existsSync(pki.caKey)) {
    openssl([
      'req',
      '-x509',
      ...ecKey,
      '-keyout',
      pki.caKey,
      '-out',
      pki.caCert,
      '-days',
      '3650',
      '-sha256',
      '-subj',
      '/CN=icn-lab-kubernetes-ca',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    ]);
    // A new CA invalidates every certificate it did not sign.
    for (const f of [pki.serverCert, pki.adminCert]) rmSync(f, { force: true });
  }
  if (!existsSync(pki.serverCert)) {
    signedBy(
      pki,
      'apiserver',
      '/CN=kube-apiserver',
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' +
        'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,' +
        'DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n',
      pki.serverCert,
      pki.serverKey,
    );
  }
  if (!existsSync(pki.adminCert)) {
    signedBy(
      pki,
      'admin',
      '/O=system:masters/CN=icn-lab-admin',
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
      pki.adminCert,
      pki.adminKey,
    );
  }
  if (!existsSync(pki.serviceAccountKey) || !existsSync(pki.serviceAccountPub)) {
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', pki.serviceAccountKey]);
    openssl(['pkey', '-in', pki.serviceAccountKey, '-pubout', '-out', pki.serviceAccountPub]);
  }
  return pki;
}
