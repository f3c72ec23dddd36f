import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TokenScope } from '../domain/config.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Bearer tokens with scopes. Tokens are compared by digest in constant time so that neither timing nor a log line
 * reveals one; `admin` implies every scope.
 */
export class TokenAuthority {
  private readonly entries: { digest: Buffer; scopes: TokenScope[] }[];

  constructor(tokens: Map<string, TokenScope[]>) {
    this.entries = [...tokens].map(([token, scopes]) => ({ digest: digest(token), scopes }));
  }

  scopesOf(authorization: string | undefined): TokenScope[] | undefined {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!match?.[1]) return undefined;
    const presented = digest(match[1]);
    // Check every entry so that the time taken does not depend on which one matched.
    let found: TokenScope[] | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, presented)) found = e.scopes;
    return found;
  }

  /** A preHandler answering 401 without a known token and 403 without the scope. */
  require(scope: TokenScope) {
    return async (request: FastifyRequest, reply: FastifyReply) => {
      const scopes = this.scopesOf(request.headers.authorization);
      if (!scopes) {
        return reply
          .code(401)
          .header('www-authenticate', 'Bearer')
          .send({ error: 'Unauthorized', message: 'a bearer token is required (Authorization: Bearer <token>)' });
      }
      if (!scopes.includes(scope) && !scopes.includes('admin')) {
        return reply.code(403).send({ error: 'Forbidden', message: `this token lacks the "${scope}" scope` });
      }
    };
  }
}
