// A Worker that runs one off-site page with the production modules, so the
// Node tests can exercise the copy inside workerd (its fetch, FixedLengthStream
// and R2 binding streams), not only under Node. Bundled by the test with esbuild.
import { syncOffsitePage, type OffsiteOptions, type R2Source } from "../../workers/storage/offsite.ts";
import { S3Client } from "../../workers/storage/s3/client.ts";

interface PageRequest {
  endpoint: string;
  bucket: string;
  options: OffsiteOptions;
}

export default {
  async fetch(request: Request, env: { SRC: R2Source }): Promise<Response> {
    const body = (await request.json()) as PageRequest;
    const client = new S3Client({ endpoint: body.endpoint, accessKeyId: "test", secretAccessKey: "test", region: "us-east-1" });
    try {
      return Response.json(await syncOffsitePage(env.SRC, { client, bucket: body.bucket }, body.options));
    } catch (e) {
      return Response.json({ error: String(e) }, { status: 500 });
    }
  },
};
