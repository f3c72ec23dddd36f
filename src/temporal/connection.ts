import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { NativeConnection, type TLSConfig } from '@temporalio/worker';
import type { Config } from '../domain/config.ts';
import { AesGcmPayloadCodec, type CodecKeys } from './codec.ts';

/** Every payload the client and worker exchange goes through the encrypting codec. */
export function dataConverter(keys: CodecKeys): DataConverter {
  return { payloadCodecs: [new AesGcmPayloadCodec(keys)] };
}

function tlsConfig(config: Config): TLSConfig | undefined {
  const tls = config.temporal.tls;
  if (!tls) return undefined;
  return {
    ...(tls.serverName && { serverNameOverride: tls.serverName }),
    ...(tls.caFile && { serverRootCACertificate: readFileSync(tls.caFile) }),
    ...(tls.certFile &&
      tls.keyFile && { clientCertPair: { crt: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } }),
  };
}

export async function connectClient(config: Config): Promise<Client> {
  const tls = tlsConfig(config);
  const connection = await Connection.connect({ address: config.temporal.address, ...(tls && { tls }) });
  return new Client({ connection, namespace: config.temporal.namespace, dataConverter: dataConverter(config.codec) });
}

export async function connectWorker(config: Config): Promise<NativeConnection> {
  const tls = tlsConfig(config);
  return NativeConnection.connect({ address: config.temporal.address, ...(tls && { tls }) });
}
