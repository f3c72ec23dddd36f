import { labDown } from '../../deploy/dev/lab/index.ts';

/** Leaves nothing running after the suite; ICN_KEEP_LAB=1 keeps the lab up for quicker reruns. */
export default async function globalTeardown(): Promise<void> {
  if (process.env.ICN_KEEP_LAB !== '1') await labDown();
}
