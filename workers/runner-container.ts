// The runner as a Cloudflare Container (production). Its outbound requests to
// the repository host are served in-process by this Worker's app with the R2
// binding, so the container holds no R2 credentials and chunk bytes never
// leave Cloudflare. Locally the runner is a plain process and RUNNER_URL is used.
import { Container } from "@cloudflare/containers";
import { app } from "./app.ts";
import type { Env } from "./env.ts";

export const REPOSITORY_HOST = "repository.internal";

export class RunnerContainer extends Container<Env> {
  override defaultPort = 8788;
  override sleepAfter = "15m";

  constructor(ctx: DurableObjectState<{}>, env: Env) {
    super(ctx, env);
    this.envVars = { RUNNER_TOKEN: env.RUNNER_TOKEN, PORT: String(this.defaultPort) };
  }

  static {
    RunnerContainer.outboundByHost = {
      [REPOSITORY_HOST]: (req: Request, env: unknown) => app.fetch(req, env as Env),
    };
  }
}
