import { z } from 'zod';
import { Labels } from './meta.ts';

/** kubectl's equality-based label selector: `region=eu-west,tier=edge,gpu` (a bare key means "has the label"). */
export const LabelSelector = z
  .string()
  .max(1024)
  .transform((s, ctx) => {
    const matchLabels: Record<string, string> = {};
    const hasLabels: string[] = [];
    for (const term of s.split(',').map((t) => t.trim())) {
      if (term === '') continue;
      const [key = '', value, extra] = term.split('=');
      if (extra !== undefined || key === '') {
        ctx.addIssue({ code: 'custom', message: `"${term}" is not key=value or key` });
        return z.NEVER;
      }
      if (value === undefined) hasLabels.push(key);
      else matchLabels[key] = value;
    }
    const checked = Labels.safeParse(matchLabels);
    if (!checked.success) {
      ctx.addIssue({ code: 'custom', message: checked.error.issues[0]?.message ?? 'invalid label' });
      return z.NEVER;
    }
    return { matchLabels: checked.data, hasLabels };
  });
export type LabelSelector = z.infer<typeof LabelSelector>;
