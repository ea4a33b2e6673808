// Node project setup: one moto_server (a real S3-compatible server, see
// runner/dev/moto.ts) for the S3 API tests, installed once per machine under
// .cache/ and started once per run.
import type { TestProject } from "vitest/node";
import { startMoto, type MotoServer } from "../../runner/dev/moto.ts";

let server: MotoServer | undefined;

export default async function setup(project: TestProject) {
  server = await startMoto();
  project.provide("motoUrl", server.url);
  return async () => {
    await server?.stop();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    motoUrl: string;
  }
}
