import type { Logger } from "../log";
import { tokenMatches } from "../middleware/access";
import { IMPLICIT_TENANT, type Tenant } from "./tenant";
import { readTokensFile, type TenantEntry, TokensFileError } from "./tokens-file";

/**
 * The tenants this server knows and their tokens: those of a tokens file (reloaded on SIGHUP), or
 * the implicit admin tenant that the single --auth-token names (or no token at all: `open`).
 */
export class Tenants {
  private constructor(
    private entries: readonly TenantEntry[],
    /** No token is asked for: every request is the implicit tenant's. */
    readonly open: boolean,
    private readonly file?: { path: string; log: Logger },
  ) {}

  /** The implicit tenant, named by `token`; without one, every request is its. */
  static single(token: string | undefined): Tenants {
    return new Tenants(token === undefined ? [] : [{ tenant: IMPLICIT_TENANT, token }], token === undefined);
  }

  /** The tenants of the tokens file at `path`, already read as `entries`; `reload` reads it again. */
  static fromFile(path: string, entries: readonly TenantEntry[], log: Logger): Tenants {
    return new Tenants(entries, false, { path, log });
  }

  get size(): number {
    return this.entries.length;
  }

  /**
   * The tenant whose token this is. Every token is compared, in constant time each, so that the
   * time taken tells neither which tenant matched nor how much of a token did.
   */
  authenticate(token: string): Tenant | undefined {
    let found: Tenant | undefined;
    for (const entry of this.entries) if (tokenMatches(token, entry.token) && found === undefined) found = entry.tenant;
    return found;
  }

  /**
   * Reads the tokens file again: new, removed and rotated tokens count from the next request. A
   * file that does not parse leaves the tenants as they were, and says why in one log line.
   */
  reload(): void {
    if (!this.file) return;
    const { path, log } = this.file;
    try {
      const { tenants, warnings } = readTokensFile(path);
      this.entries = tenants;
      for (const warning of warnings) log.warn(warning);
      log.info("tokens file reloaded", { path, tenants: tenants.length });
    } catch (err) {
      if (!(err instanceof TokensFileError)) throw err;
      log.error(`tokens file not reloaded, the ${this.entries.length} tenants before stay: ${err.message}`);
    }
  }
}
