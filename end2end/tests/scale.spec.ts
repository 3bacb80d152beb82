// Several servers on one PostgreSQL database, nginx in front (deploy/nginx.sh): a browser on server B
// sees what is posted to server A, directly and through nginx, and after A is killed mid-ingest it
// holds every point A acknowledged; a restarted A serves the same history.
import { expect, Page, test } from "@playwright/test";
import { freePort, postgresDatabase, Server } from "./server";

const started: Server[] = [];

test.afterEach(async () => {
  for (const server of started.splice(0)) await server.stop("SIGKILL");
});

async function start(database: string): Promise<Server> {
  const server = await Server.start(database, await freePort());
  started.push(server);
  return server;
}

const points = (page: Page, signal: string) =>
  page.locator(`article.chart[data-signal="${signal}"]`).getAttribute("data-points").then(Number);

/** The timestamps of `signal` that `server` answers with. */
async function stored(server: Server, signal: string, from: number): Promise<number[]> {
  const response = await fetch(`${server.url}/api/telemetry?from=${from}&to=${Date.now() + 60_000}&signals=${signal}`);
  const history = (await response.json()) as { series: { timestamps: number[] }[] };
  return history.series[0]?.timestamps ?? [];
}

test("a browser on one server sees every point posted to another, even one killed mid-ingest", async ({ page }) => {
  const database = postgresDatabase();
  const [a, b] = [await start(database), await start(database)];
  const nginx = await Server.balancing([a, b]);
  started.push(nginx);
  const t0 = Date.now() - 60_000;
  await a.post({ timestamp: t0, signals: { direct: 0, balanced: 0, crash: 0 } });

  await page.goto(b.url);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator("#connection")).toHaveAttribute("data-state", "live");
  for (let i = 1; i <= 3; i++) {
    await a.post({ timestamp: t0 + i, signals: { direct: i } });
    await nginx.post({ timestamp: t0 + i, signals: { balanced: i } });
  }
  await expect.poll(() => points(page, "direct")).toBe(4);
  await expect.poll(() => points(page, "balanced")).toBe(4);

  // Post to A one point at a time, and kill it in the middle of it.
  const acknowledged: number[] = [];
  const ingest = (async () => {
    for (let i = 1; ; i++) {
      try {
        await a.post({ timestamp: t0 + 1_000 + i, signals: { crash: i } });
        acknowledged.push(t0 + 1_000 + i);
      } catch {
        return;
      }
    }
  })();
  await expect.poll(() => acknowledged.length).toBeGreaterThan(50);
  await a.stop("SIGKILL");
  await ingest;

  // Every acknowledged point is stored, and B's chart shows all that is stored once its live
  // client has backfilled (B notices A's silence, and its clients reconnect and read history).
  const kept = await stored(b, "crash", t0);
  expect(kept).toEqual(expect.arrayContaining(acknowledged));
  await expect.poll(() => points(page, "crash"), { timeout: 15_000 }).toBe(kept.length);

  const restarted = await start(database);
  expect(await stored(restarted, "crash", t0)).toEqual(kept);
});
