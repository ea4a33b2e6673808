// How the Worker hands a job to the runner. One narrow interface, two
// transports: a Cloudflare Container (production) or a plain URL (local mode).
import { dispatchSecrets, type DispatchBase } from "../shared/protocol.ts";

/** A kind's dispatch: the common fields, and whatever else that kind's runner handler reads. */
export type RunnerDispatch = DispatchBase & Record<string, unknown>;
import type { Env } from "../env.ts";

export interface RunnerClient {
  /** Resolves once the runner has accepted the job; the outcome arrives later on the repository endpoint. */
  dispatch(job: RunnerDispatch): Promise<void>;
}

export class DispatchError extends Error {
  override name = "DispatchError";
}

export function runnerClient(env: Env): RunnerClient {
  if (env.RUNNER) {
    const stub = env.RUNNER.get(env.RUNNER.idFromName("runner"));
    return fetcherRunner((req) => stub.fetch(req), "http://runner.internal", env.RUNNER_TOKEN);
  }
  if (env.RUNNER_URL) return fetcherRunner((req) => fetch(req), env.RUNNER_URL, env.RUNNER_TOKEN);
  throw new DispatchError("no runner configured: bind RUNNER (container) or set RUNNER_URL");
}

function fetcherRunner(send: (req: Request) => Promise<Response>, base: string, token: string): RunnerClient {
  return {
    async dispatch(job) {
      const req = new Request(new URL("/jobs", base), {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(job),
      });
      let res: Response;
      try {
        res = await send(req);
      } catch (e) {
        throw new DispatchError(`runner unreachable: ${(e as Error).message}`);
      }
      if (res.status !== 202 && res.status !== 200) {
        throw new DispatchError(`runner refused the job (HTTP ${res.status}): ${redact(await res.text(), job).slice(0, 300)}`);
      }
    },
  };
}

/** The runner's answer ends up in the catalog: never let it carry this job's secrets (or any URL's credentials). */
function redact(text: string, job: RunnerDispatch): string {
  let out = text;
  for (const secret of dispatchSecrets(job)) out = out.split(secret).join("[redacted]");
  return out.replace(/\/\/[^\s/@"']+@/g, "//[redacted]@");
}
