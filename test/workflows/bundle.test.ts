// Needs: nothing (the bundler only). Every workflow run evaluates its bundle's modules afresh: a module that builds
// zod schemas costs every site operation of a fleet its CPU (src/domain/keys.ts says how much). Workflows import only
// types from the schema modules; a value imported from one pulls zod in, and this fails.
import { describe, expect, it } from '@jest/globals';
import { workflowBundle } from '../support/temporal.ts';

describe('the workflow bundle', () => {
  it('holds no zod and no schema module of src/domain', async () => {
    const { code } = await workflowBundle();
    const modules = [...code.matchAll(/^\/\*\*\*\/ "(\.\/[^"]+)"/gm)].map((m) => m[1] ?? '');
    expect(modules).toContain('./src/workflows/index.ts');
    expect(modules.filter((m) => m.includes('node_modules/zod/'))).toEqual([]);
    const domain = modules.filter((m) => m.startsWith('./src/domain/'));
    expect(domain.filter((m) => !['./src/domain/keys.ts', './src/domain/profile-diff.ts'].includes(m))).toEqual([]);
  });
});
