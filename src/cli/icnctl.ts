#!/usr/bin/env node
/**
 * icnctl: the operator's command line. It talks to the trigger API only (ICN_API_URL, ICN_API_TOKEN or --server,
 * --token). Exit codes: 0 done, 1 the operation reported a failure, 2 bad usage or input, 3 API unreachable or refused.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ApiClient, ApiError } from './api-client.ts';

const program = new Command('icnctl')
  .description('Zero-touch provisioning of bare-metal Kubernetes edge sites')
  .option('-s, --server <url>', 'trigger API URL', process.env.ICN_API_URL ?? 'http://127.0.0.1:8090')
  .option('-t, --token <token>', 'bearer token (default: $ICN_API_TOKEN)', process.env.ICN_API_TOKEN)
  .option('-o, --output <format>', 'table | json', 'table')
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

function api(): ApiClient {
  const opts = program.opts<{ server: string; token?: string }>();
  return new ApiClient(opts.server, opts.token);
}

function output(): 'table' | 'json' {
  return program.opts<{ output: string }>().output === 'json' ? 'json' : 'table';
}

program
  .command('health')
  .description('check that the trigger API and Temporal answer')
  .action(async () => {
    const health = await api().get<{ status: string; temporal: string }>('/healthz');
    if (output() === 'json') console.log(JSON.stringify(health, null, 2));
    else console.log(`api: ${health.status}   temporal: ${health.temporal}`);
    process.exitCode = health.status === 'ok' ? 0 : 1;
  });

const endpoint = (value: string, previous: { name: string; url: string }[] = []) => {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected name=url, e.g. ironic=http://10.0.0.2:6385');
  return [...previous, { name: value.slice(0, eq), url: value.slice(eq + 1) }];
};

program
  .command('check-site <site>')
  .description("probe a site's local-controller endpoints through a workflow")
  .requiredOption('-e, --endpoint <name=url>', 'an endpoint to probe (repeatable)', endpoint)
  .action(async (site: string, opts: { endpoint: { name: string; url: string }[] }) => {
    const report = await api().post<{
      healthy: boolean;
      probes: {
        name: string;
        url: string;
        reachable: boolean;
        httpStatus?: number;
        latencyMs: number;
        error?: string;
      }[];
    }>(`/v1/sites/${encodeURIComponent(site)}/health-check`, { endpoints: opts.endpoint });
    if (output() === 'json') {
      console.log(JSON.stringify(report, null, 2));
    } else {
      console.table(
        report.probes.map((p) => ({
          endpoint: p.name,
          reachable: p.reachable ? 'yes' : 'NO',
          status: p.httpStatus ?? '-',
          'latency ms': p.latencyMs,
          error: p.error ?? '',
        })),
      );
      console.log(`site ${site}: ${report.healthy ? 'healthy' : 'UNHEALTHY'}`);
    }
    process.exitCode = report.healthy ? 0 : 1;
  });

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof ApiError) {
    console.error(`icnctl: ${err.message}`);
    process.exit(
      err.status !== undefined && err.status >= 400 && err.status < 500 && err.status !== 401 && err.status !== 403
        ? 2
        : 3,
    );
  }
  throw err;
}
