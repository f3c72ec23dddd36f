#!/usr/bin/env node
/**
 * icnctl: the operator's command line. It talks to the trigger API only (ICN_API_URL, ICN_API_TOKEN or --server,
 * --token). Exit codes: 0 done, 1 the operation reported a failure, 2 bad usage or input, 3 API unreachable or refused.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ApiClient, ApiError } from './api-client.ts';
import { apply, describeSite, exitCodeOf, get, kindOf, remove, upload } from './commands/inventory.ts';
import { hostAnnotations, InputError, siteLabel } from './manifests.ts';
import { isOutputFormat, type OutputFormat } from './output.ts';
import { follow, listSiteOperations, parseProfileRef, startSiteOperation } from './commands/operations.ts';
import {
  cancelRollout,
  controlRollout,
  createSchedule,
  followRollout,
  getSchedules,
  listRollouts,
  type RolloutOptions,
  scheduleAction,
  showRollout,
  startRollout,
} from './commands/rollouts.ts';
import { LabelSelector } from '../domain/selector.ts';
import { apiVersion } from '../domain/meta.ts';
import { defaultHostTakeoverSeconds } from '../domain/keys.ts';

const program = new Command('icnctl')
  .description('Zero-touch provisioning of bare-metal Kubernetes edge sites')
  .option('-s, --server <url>', 'trigger API URL', process.env.ICN_API_URL ?? 'http://127.0.0.1:8090')
  .option('-t, --token <token>', 'bearer token (default: $ICN_API_TOKEN)', process.env.ICN_API_TOKEN)
  .option('-o, --output <format>', 'table | json | yaml', 'table')
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

function api(): ApiClient {
  const opts = program.opts<{ server: string; token?: string }>();
  return new ApiClient(opts.server, opts.token);
}

function output(): OutputFormat {
  const format = program.opts<{ output: string }>().output;
  if (!isOutputFormat(format)) {
    throw new InputError([{ where: '--output', field: '', message: `"${format}" is not table, json or yaml` }]);
  }
  return format;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

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

program
  .command('apply')
  .description('create or update Secrets, SoftwareProfiles and Sites from YAML files and folders')
  .requiredOption('-f, --filename <file|folder>', 'a YAML file or a folder read recursively (repeatable)', collect)
  .addHelpText(
    'after',
    `
Documents: ${apiVersion} Secret, SoftwareProfile and Site, several per file (---).
Every document is validated first; if one is invalid nothing is sent. Then Secrets, Profiles and Sites are sent
in that order and each prints one line: site/NAME created | configured | unchanged.

metal3 inventory: metal3.io/v1alpha1 BareMetalHost documents become hosts of the Site they name, and the v1
Secrets (type Opaque, data.username and data.password in base64) their spec.bmc.credentialsName refers to become
bmc-credentials Secrets. The Site must be in the same apply. A BareMetalHost maps as follows:
${[
  [`label (or annotation) ${siteLabel}`, 'the Site (required)'],
  ['metadata.name', 'host name'],
  ['spec.bmc.address, .credentialsName, ...', 'bmc.address, bmc.credentialsRef, ...'],
  ['spec.bootMACAddress', 'bootMacAddress'],
  ['spec.rootDeviceHints', 'rootDeviceHints (deviceName, serialNumber, minSizeGigabytes, rotational)'],
  [`annotation ${hostAnnotations.role}`, 'role: control-plane | worker (default worker)'],
  [`annotation ${hostAnnotations.sshAddress}`, 'ssh.address (default: the host name)'],
  [`annotation ${hostAnnotations.sshPort}`, 'ssh.port (default 22)'],
  [`annotation ${hostAnnotations.sshUser}`, 'ssh.user (default root)'],
  [`annotation ${hostAnnotations.sshKeySecret}`, 'ssh.keyRef (default: that annotation on the Site,'],
  ['', "  else the key of the Site's first listed host)"],
]
  .map(([from = '', to = '']) => `  ${from.padEnd(46)}${to}`)
  .join('\n')}`,
  )
  .action(async (opts: { filename: string[] }) => {
    process.exitCode = await apply(api(), opts.filename);
  });

program
  .command('get <kind> [name] [version]')
  .description('list sites, profiles, artifacts or secrets, or show one (profiles: NAME VERSION)')
  .option('-l, --selector <selector>', 'label selector for sites, e.g. region=eu-west,gpu')
  .action(async (kind: string, name: string | undefined, version: string | undefined, opts: { selector?: string }) => {
    await get(api(), kindOf(kind), name, version, {
      ...(opts.selector !== undefined && { selector: opts.selector }),
      output: output(),
    });
  });

program
  .command('describe <kind> <name>')
  .description('show a site: spec summary, hosts and status')
  .action(async (kind: string, name: string) => {
    if (kindOf(kind) !== 'site') {
      throw new InputError([{ where: 'describe', field: '', message: 'describes sites; use get for other kinds' }]);
    }
    await describeSite(api(), name, output());
  });

program
  .command('delete <kind> <name> [version]')
  .description('delete a site, a profile (NAME VERSION), an artifact (SHA256, or NAME VERSION) or a secret')
  .action(async (kind: string, name: string, version: string | undefined) => {
    await remove(api(), kindOf(kind), name, version);
  });

const keyValue = (value: string, previous: Record<string, string> = {}) => {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError('expected key=value, e.g. arch=amd64');
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
};

program
  .command('upload <file>')
  .description('upload an artifact: its sha256 is computed locally and checked by the API before it is visible')
  .requiredOption('--type <type>', 'os-image | binary-package | helm-chart')
  .requiredOption('--name <name>', 'artifact name')
  .requiredOption('--version <version>', 'artifact version (semver)')
  .option('--metadata <key=value>', 'free-form metadata (repeatable)', keyValue, {})
  .action(
    async (file: string, opts: { type: string; name: string; version: string; metadata: Record<string, string> }) => {
      await upload(api(), file, { ...opts, output: output() });
    },
  );

const wait = (opts: { wait: boolean }) => ({ wait: opts.wait, output: output() });
const toInt = (field: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${field} must be a whole number`);
  return n;
};
const hostTakeoverHelp =
  `seconds a host's patch may go unheard (its worker died) before another worker resumes it (default ${defaultHostTakeoverSeconds}; ` +
  'longer: fewer writes on the Temporal server at thousands of sites)';
const profileRef = (value: string) => {
  try {
    return parseProfileRef(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};
const selector = (value: string) => {
  const parsed = LabelSelector.safeParse(value);
  if (!parsed.success || parsed.data.hasLabels.length > 0) {
    throw new InvalidArgumentError('expected key=value[,key=value], e.g. tier=edge,region=eu-west');
  }
  return parsed.data.matchLabels;
};

program
  .command('install <site>')
  .description('install a site: hosts from bare metal to a working cluster with its add-ons; shows progress until done')
  .option('--keep-on-failure', 'leave what was built in place when a step fails, for diagnosis', false)
  .option('--no-wait', 'return once started')
  .action(async (site: string, opts: { keepOnFailure: boolean; wait: boolean }) => {
    process.exitCode = await startSiteOperation(
      api(),
      site,
      'install',
      { keepOnFailure: opts.keepOnFailure },
      wait(opts),
    );
  });

program
  .command('patch <site>')
  .description('move a site to a software profile, host by host; shows progress until done')
  .requiredOption('--profile <name@version>', 'the profile to move to', profileRef)
  .option('--max-unavailable <n>', 'hosts patched at once', toInt('--max-unavailable'), 1)
  .option('--host-takeover <seconds>', hostTakeoverHelp, toInt('--host-takeover'))
  .option('--no-wait', 'return once started')
  .action(
    async (
      site: string,
      opts: {
        profile: { name: string; version: string };
        maxUnavailable: number;
        hostTakeover?: number;
        wait: boolean;
      },
    ) => {
      const body = {
        profile: opts.profile,
        maxUnavailable: opts.maxUnavailable,
        ...(opts.hostTakeover !== undefined && { hostTakeoverSeconds: opts.hostTakeover }),
      };
      process.exitCode = await startSiteOperation(api(), site, 'patch', body, wait(opts));
    },
  );

program
  .command('upgrade <site>')
  .description("upgrade a site's Kubernetes: control plane first, then workers; shows progress until done")
  .requiredOption('--kubernetes-version <version>', 'e.g. v1.35.0')
  .option('--no-wait', 'return once started')
  .action(async (site: string, opts: { kubernetesVersion: string; wait: boolean }) => {
    process.exitCode = await startSiteOperation(
      api(),
      site,
      'upgrade',
      { kubernetesVersion: opts.kubernetesVersion },
      wait(opts),
    );
  });

program
  .command('reconcile <site>')
  .description("bring an installed site's hosts in line with its spec: new hosts joined, removed ones taken out")
  .option('--no-wait', 'return once started')
  .action(async (site: string, opts: { wait: boolean }) => {
    process.exitCode = await startSiteOperation(api(), site, 'reconcile', {}, wait(opts));
  });

program
  .command('status <site> <operation>')
  .description(
    'follow an operation of a site (install, patch, upgrade, reconcile) until it ends; exit 0 when it completed',
  )
  .action(async (site: string, operation: string) => {
    const path = `/v1/sites/${encodeURIComponent(site)}/operations/${encodeURIComponent(operation)}`;
    process.exitCode = await follow(api(), path, { output: output() });
  });

program
  .command('cancel <site> <operation>')
  .description("cancel a site's running operation (install, patch, upgrade, reconcile): its compensations run")
  .action(async (site: string, operation: string) => {
    await api().post(`/v1/sites/${encodeURIComponent(site)}/operations/${encodeURIComponent(operation)}/cancel`, {});
    console.log(
      `${operation} of ${site}: cancel requested; \`icnctl status ${site} ${operation}\` follows the compensations`,
    );
  });

program
  .command('operations <site>')
  .description("a site's operations, newest first")
  .action(async (site: string) => {
    await listSiteOperations(api(), site, output());
  });

const failureBudget = (value: string) => {
  if (/^\d+$/.test(value)) return Number(value);
  if (/^\d+(\.\d+)?%$/.test(value)) return value;
  throw new InvalidArgumentError('expected a count of sites (e.g. 3) or a share of them (e.g. 10%)');
};
const window = (value: string) => {
  const match = /^(\d\d:\d\d)-(\d\d:\d\d)$/.exec(value);
  if (!match?.[1] || !match[2]) throw new InvalidArgumentError('expected HH:MM-HH:MM, e.g. 22:00-04:00');
  return { start: match[1], end: match[2] };
};
const oneOf =
  <T extends string>(field: string, ...values: T[]) =>
  (value: string): T => {
    const found = values.find((v) => v === value);
    if (found === undefined) throw new InvalidArgumentError(`${field} must be ${values.join(' or ')}`);
    return found;
  };
const list = (value: string) => value.split(',').filter((v) => v !== '');

const rolloutOptions = (c: Command) =>
  c
    .option('-l, --selector <labels>', "the sites, by label: key=value[,key=value]; '' selects every site", selector)
    .option(
      '--sites <names>',
      'the sites, by name (comma-separated); with -l, those of them that have the labels',
      list,
    )
    .requiredOption(
      '--operation <op>',
      'install | patch | upgrade',
      oneOf('--operation', 'install', 'patch', 'upgrade'),
    )
    .option('--profile <name@version>', 'for a patch', profileRef)
    .option('--max-unavailable <n>', 'for a patch: hosts patched at once within a site', toInt('--max-unavailable'))
    .option('--host-takeover <seconds>', `for a patch: ${hostTakeoverHelp}`, toInt('--host-takeover'))
    .option('--kubernetes-version <version>', 'for an upgrade')
    .option(
      '--max-concurrency <n>',
      'sites at once (changeable later: rollout set-concurrency)',
      toInt('--max-concurrency'),
    )
    .option('--canary <sites>', 'sites done first, alone (comma-separated)', list)
    .option('--canary-soak <seconds>', 'after the canaries succeeded, wait this long', toInt('--canary-soak'))
    .option('--canary-approval', 'after the canaries succeeded, wait for: icnctl rollout approve <id>')
    .option(
      '--max-failures <n|p%>',
      'failed sites tolerated before stopping or pausing (count or share)',
      failureBudget,
    )
    .option('--on-failure-limit <action>', 'stop | pause', oneOf('--on-failure-limit', 'stop', 'pause'))
    .option(
      '--site-timeout <seconds>',
      'a site running longer is cancelled and counted failed',
      toInt('--site-timeout'),
    )
    .option('--on-site-timeout <action>', 'continue | abort', oneOf('--on-site-timeout', 'continue', 'abort'))
    .option('--window <HH:MM-HH:MM>', "start sites only in this daily window, in each site's time zone", window);

const rollout = program.command('rollout').description('operations across many sites');
rolloutOptions(rollout.command('start').description('start a rollout; shows progress until done'))
  .option('--no-wait', 'return once started')
  .action(async (opts: RolloutOptions & { wait: boolean }) => {
    process.exitCode = await startRollout(api(), opts, wait(opts));
  });
rollout
  .command('status <id>')
  .description("a rollout's progress, live: each site as it starts, ends or fails, and the counts, until it ends")
  .option('--once', 'show where it stands and return')
  .action(async (id: string, opts: { once?: boolean }) => {
    if (opts.once) await showRollout(api(), id, output());
    else process.exitCode = await followRollout(api(), id, { output: output() });
  });
rollout
  .command('list')
  .description('rollouts, newest first, scheduled runs included')
  .action(async () => {
    await listRollouts(api(), output());
  });
rollout
  .command('pause <id>')
  .description('start no other site; the running ones finish')
  .option('--reason <text>', 'why (shown in the progress)')
  .action(async (id: string, opts: { reason?: string }) => {
    await controlRollout(api(), id, 'pause', opts.reason === undefined ? {} : { reason: opts.reason }, output());
  });
rollout
  .command('resume <id>')
  .description('go on after a pause, accepting the failures so far')
  .option('--max-failures <n|p%>', 'raise the failure budget as well', failureBudget)
  .action(async (id: string, opts: { maxFailures?: number | string }) => {
    const body = opts.maxFailures === undefined ? {} : { maxFailures: opts.maxFailures };
    await controlRollout(api(), id, 'resume', body, output());
  });
rollout
  .command('approve <id>')
  .description('let the rest of the sites start once the canaries succeeded')
  .action(async (id: string) => {
    await controlRollout(api(), id, 'approve', {}, output());
  });
rollout
  .command('set-concurrency <id> <n>')
  .description('change how many sites run at once, while the rollout runs')
  .action(async (id: string, n: string) => {
    const maxConcurrency = toInt('<n>')(n);
    await controlRollout(api(), id, 'concurrency', { maxConcurrency }, output());
  });
rollout
  .command('cancel <id>')
  .description('cancel a rollout: no other site starts, running ones are cancelled (they compensate)')
  .action(async (id: string) => {
    await cancelRollout(api(), id);
  });

const schedule = program.command('schedule').description('scheduled rollouts (patch runs)');
rolloutOptions(schedule.command('create <name>').description('run a rollout on a cron schedule (UTC)'))
  .requiredOption('--cron <expr>', 'five-field cron, e.g. "0 2 * * 6" (repeatable)', collect)
  .option('--paused', 'create it paused', false)
  .action(async (name: string, opts: RolloutOptions & { cron: string[]; paused: boolean }) => {
    await createSchedule(api(), name, opts.cron, opts, { paused: opts.paused, output: output() });
  });
schedule
  .command('get [name]')
  .description('list schedules, or show one with its next runs and last rollout')
  .action(async (name: string | undefined) => {
    await getSchedules(api(), name, output());
  });
schedule
  .command('list')
  .description('schedules with their next run and last rollout')
  .action(async () => {
    await getSchedules(api(), undefined, output());
  });
for (const action of ['pause', 'unpause', 'delete'] as const) {
  schedule
    .command(`${action} <name>`)
    .description(`${action} a schedule`)
    .option('--note <text>', 'why (shown with the schedule)')
    .action(async (name: string, opts: { note?: string }) => {
      await scheduleAction(api(), name, action, opts.note);
    });
}
schedule
  .command('trigger <name>')
  .description("start the schedule's rollout now (skipped while its previous run still runs)")
  .action(async (name: string) => {
    await scheduleAction(api(), name, 'trigger');
  });

try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof InputError) {
    console.error(
      `icnctl: invalid input\n${err.issues.map((i) => `  ${i.where}: ${i.field ? `${i.field}: ` : ''}${i.message}`).join('\n')}`,
    );
    process.exit(2);
  }
  if (err instanceof ApiError) {
    console.error(`icnctl: ${err.message}`);
    process.exit(exitCodeOf(err));
  }
  throw err;
}
