/** What to deploy: the image and its checksum, plus kernel/ramdisk for ramdisk deploys and partition images. */
import { type IronicHttp, nodePath, nodeSubject } from './http.ts';
import { getNode } from './read.ts';
import type { IronicNode } from './types.ts';

export interface InstanceInfo {
  /** http(s):// or file:// URL of the OS image. */
  imageSource: string;
  /** sha256/sha512 etc. of the image, Ironic's "os hash"; preferred over the legacy md5 image_checksum. */
  imageOsHash?: { algorithm: string; value: string };
  /** Legacy md5 checksum (or a URL to a checksum file). */
  imageChecksum?: string;
  kernel?: string;
  ramdisk?: string;
  rootGb?: number;
  /** Anything else instance_info accepts (configdrive excluded: it is sent with the deploy request). */
  extra?: Record<string, string | number | boolean>;
}

export async function setInstanceInfo(http: IronicHttp, ident: string, info: InstanceInfo): Promise<IronicNode> {
  const values: Record<string, string | number | boolean> = {
    image_source: info.imageSource,
    ...(info.imageOsHash && {
      image_os_hash_algo: info.imageOsHash.algorithm,
      image_os_hash_value: info.imageOsHash.value,
    }),
    ...(info.imageChecksum !== undefined && { image_checksum: info.imageChecksum }),
    ...(info.kernel !== undefined && { kernel: info.kernel }),
    ...(info.ramdisk !== undefined && { ramdisk: info.ramdisk }),
    ...(info.rootGb !== undefined && { root_gb: info.rootGb }),
    ...info.extra,
  };
  await http.request('PATCH', nodePath(ident), undefined, {
    operation: 'set instance info of',
    subject: nodeSubject(ident),
    // "add" on an existing member replaces it (RFC 6902), so this is idempotent.
    body: Object.entries(values).map(([k, v]) => ({ op: 'add', path: `/instance_info/${k}`, value: v })),
  });
  return getNode(http, ident);
}
