import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TokenAuthority } from '../../api/auth.ts';
import { BpaSecret } from '../../domain/bpa.ts';
import { ResourceName } from '../../domain/names.ts';
import type { SecretsFolder, SshPool } from '../secrets.ts';
import { Failure, security } from './common.ts';

/** Write-only: an SSH key goes in and is referenced by name by jobs; nothing reads it back. */
export function secretRoutes(deps: {
  secrets: SecretsFolder;
  ssh: SshPool;
  auth: TokenAuthority;
}): FastifyPluginAsyncZod {
  const { secrets, ssh, auth } = deps;
  return async (app) => {
    app.put(
      '/v1/secrets/:name',
      {
        preHandler: auth.require('write'),
        schema: {
          tags: ['secrets'],
          security,
          summary: 'Store an SSH key under a name (write-only)',
          params: z.strictObject({ name: ResourceName }),
          body: BpaSecret,
          response: { 204: z.null(), 400: Failure },
        },
      },
      async (request, reply) => {
        // Only a changed key drops the connections made with the old one: jobs running with an unchanged key go on.
        if (await secrets.put(request.params.name, request.body)) await ssh.forget(request.params.name);
        return reply.code(204).send(null);
      },
    );
  };
}
