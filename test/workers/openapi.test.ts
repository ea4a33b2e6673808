// GET /openapi.json: the admin API's description, generated from the routes'
// own zod schemas. The route table and Hono's registered routes are compared
// both ways, so neither can drift from the other.
import { describe, expect, it } from "vitest";
import { app } from "../../workers/app.ts";
import { OPERATIONS, openApiDocument, openApiPath } from "../../workers/api/openapi.ts";
import { BackupRequest } from "../../workers/database/routes.ts";
import { AcceptedResponse, JobView } from "../../workers/http.ts";
import { api, VIEWER } from "./helpers.ts";

/** method + OpenAPI path of every handler Hono has registered for the admin API. */
function registered(): Set<string> {
  const seen = new Set<string>();
  for (const r of app.routes) {
    if (r.method === "ALL" || r.path.startsWith("/repo/v1")) continue; // middleware; the runner's side
    seen.add(`${r.method.toLowerCase()} ${openApiPath(r.path)}`);
  }
  return seen;
}

function documented(): Set<string> {
  const doc = openApiDocument();
  return new Set(Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`)));
}

describe("the OpenAPI document", () => {
  it("describes every registered admin route, and no route that is not registered", () => {
    const routes = registered();
    const doc = documented();
    expect(routes.size).toBeGreaterThan(40);
    expect([...routes].filter((r) => !doc.has(r)), "routes missing from the document").toEqual([]);
    expect([...doc].filter((r) => !routes.has(r)), "documented routes Hono does not serve").toEqual([]);
    expect(doc.size).toBe(OPERATIONS.length); // no operation listed twice
  });

  it("is served to a viewer, refused without a token", async () => {
    const res = await api("GET", "/openapi.json", { token: VIEWER });
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    expect(res.body).toEqual(JSON.parse(JSON.stringify(openApiDocument())));
    const anonymous = await api("GET", "/openapi.json", { token: null });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.code).toEqual(expect.any(String));
  });

  it("takes request schemas from the routes' zod schemas", () => {
    const doc = openApiDocument() as any;
    const body = doc.paths["/backup/database"].post.requestBody;
    expect(body.required).toBe(false); // {} is a valid request: every field has a default or is optional
    const schema = body.content["application/json"].schema;
    expect(Object.keys(schema.properties).sort()).toEqual(Object.keys(BackupRequest.shape).sort());
    expect(schema.additionalProperties).toBe(false); // strictObject
    expect(schema.properties.type.enum).toEqual(expect.arrayContaining(["full"]));
    const list = doc.paths["/backup/database"].get.parameters.map((p: any) => p.name).sort();
    expect(list).toEqual(["cursor", "database", "limit", "status", "type"]);
    expect(doc.paths["/storage/objects/{bucket}/{key}"].put.parameters.map((p: any) => [p.name, p.in])).toEqual([["bucket", "path"], ["key", "path"]]);
  });

  it("gives every operation the shared {error:{code,message}} schema for 4xx and 5xx", () => {
    const doc = openApiDocument() as any;
    expect(doc.components.schemas.Error).toMatchObject({
      type: "object", required: ["error"],
      properties: { error: { type: "object", required: ["code", "message"], additionalProperties: false } },
    });
    for (const ops of Object.values(doc.paths) as any[]) {
      for (const op of Object.values(ops) as any[]) {
        for (const status of ["4XX", "5XX"]) expect(op.responses[status].content["application/json"].schema).toEqual({ $ref: "#/components/schemas/Error" });
      }
    }
  });

  it("describes the queries of GET /jobs and /audit as workers/jobs/routes.ts parses them (the table mirrors those two)", async () => {
    const doc = openApiDocument() as any;
    const names = (path: string) => doc.paths[path].get.parameters.map((p: any) => p.name).sort();
    expect(names("/jobs")).toEqual(["kind", "limit", "status"]);
    expect(names("/audit")).toEqual(["limit"]);
    expect((await api("GET", "/jobs?status=queued&kind=database.backup&limit=200")).status).toBe(200);
    expect((await api("GET", "/jobs?limit=201")).status).toBe(400);
    expect((await api("GET", "/jobs?other=1")).status).toBe(400);
    expect((await api("GET", "/audit?limit=500")).status).toBe(200);
    expect((await api("GET", "/audit?limit=501")).status).toBe(400);
    const limits = (path: string) => doc.paths[path].get.parameters.find((p: any) => p.name === "limit").schema;
    expect(limits("/jobs")).toMatchObject({ minimum: 1, maximum: 200 });
    expect(limits("/audit")).toMatchObject({ minimum: 1, maximum: 500 });
  });

  it("describes every JSON success answer by a schema of named fields, not as any object", () => {
    const doc = openApiDocument() as any;
    const vague: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths) as [string, any][]) {
      for (const [method, op] of Object.entries(ops) as [string, any][]) {
        const [status, success] = Object.entries(op.responses).find(([s]) => /^2\d\d$/.test(s))! as [string, any];
        const schema = success.content["application/json"]?.schema;
        if (schema && !(schema.properties && Object.keys(schema.properties).length > 0)) vague.push(`${method} ${path} ${status}`);
      }
    }
    expect(vague).toEqual([]);
  });

  it("describes job answers with the schemas the views are typed by", async () => {
    const doc = openApiDocument() as any;
    const ok = (path: string, method: string, status: number) => doc.paths[path][method].responses[status].content["application/json"].schema;
    expect(ok("/backup/database", "post", 202)).toMatchObject({ required: ["job_id", "status", "backup_id"] });
    expect(ok("/jobs/{id}", "get", 200)).toMatchObject({ additionalProperties: false, required: expect.arrayContaining(["id", "kind", "status"]) });
    // A real job answer against its schema: JobView is strict, so a field added to jobView() without the schema fails here.
    const submitted = await api("POST", "/repository/gc", { body: { dry_run: true } });
    expect(submitted.status).toBe(202);
    expect(AcceptedResponse.safeParse(submitted.body).success).toBe(true);
    const job = await api("GET", `/jobs/${submitted.body.job_id}`);
    expect(JobView.parse(job.body)).toEqual(job.body);
  });
});
