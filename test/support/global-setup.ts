import { allTools, ensureGoTool } from '../../deploy/dev/tools.ts';

/** Builds missing tools once before any test file, so that no test times out on a first-time Go build. */
export default function globalSetup(): void {
  for (const tool of allTools) ensureGoTool(tool);
}
