import { ensureGoTool, temporalCli } from '../../deploy/dev/tools.ts';

/**
 * Builds the temporal CLI once before any test file, so that no test times out on a first-time Go build. Lab peers
 * build their own tools when they come up.
 */
export default function globalSetup(): void {
  ensureGoTool(temporalCli);
}
