import { expect, Page, test } from "@playwright/test";
import * as http from "node:http";
import { createToken, freePort, Server, tempDatabase } from "./server";

let server: Server;

test.afterEach(async () => {
  await server?.stop("SIGKILL");
});

/** Counts the canvas pixels that are not background white. */
async function inkedPixels(page: Page, signal: string): Promise<number> {
  return page.locator(`article.chart[data-signal="${signal}"] canvas`).evaluate((canvas: HTMLCanvasElement) => {
    const { data } = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height);
    let inked = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i] < 250 || data[i + 1] < 250 || data[i + 2] < 250) inked++;
    }
    return inked;
  });
}

async function signalNames(server: Server, token?: string): Promise<string[]> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const response = await fetch(`${server.url}/api/signals`, { headers });
  return ((await response.json()) as { signal: string }[]).map((s) => s.signal);
}

test("the largest and smallest finite values draw, and the page stays live", async ({ page }) => {
  server = await Server.start(tempDatabase(), await freePort());
  const now = Date.now();
  await server.post([
    { timestamp: now - 3000, signals: { huge: 1.7e308, tiny: 5e-324, flat: 42 } },
    { timestamp: now - 2000, signals: { huge: -1.7e308, tiny: 5e-324, flat: 42 } },
  ]);
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(server.url);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator("#connection")).toHaveAttribute("data-state", "live");
  for (const signal of ["huge", "tiny", "flat"]) {
    await expect.poll(() => inkedPixels(page, signal)).toBeGreaterThan(500);
  }
  // A live point still arrives and is drawn: nothing is stuck in a tick search.
  await server.post({ timestamp: now - 1000, signals: { huge: 1e308 } });
  await expect(page.locator('article.chart[data-signal="huge"]')).toHaveAttribute("data-points", "3");
  expect(errors).toEqual([]);
});

test("with tokens, the dashboard signs in with a read token, which cannot write", async ({ page }) => {
  const database = tempDatabase();
  const reader = createToken(database, "viewer", "read");
  const writer = createToken(database, "producer", "write");
  server = await Server.start(database, await freePort());
  const post = await fetch(`${server.url}/api/v2/write`, {
    method: "POST",
    headers: { authorization: `Token ${writer}` },
    body: `signed.in v=7 ${Date.now() * 1e6}`,
  });
  expect(post.status).toBe(204);

  await page.goto(server.url);
  await expect(page).toHaveURL(/\/signin$/);
  await page.fill('input[name="token"]', writer);
  await page.click('button[type="submit"]');
  await expect(page.locator(".problem")).toContainText("may only write");
  await page.fill('input[name="token"]', reader);
  await page.click('button[type="submit"]');
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator("#connection")).toHaveAttribute("data-state", "live");
  await expect(page.locator('article.chart[data-signal="signed.in.v"]')).toHaveAttribute("data-points", "1");
  // The cookie is out of the page's reach, and the read token it holds cannot write.
  expect(await page.evaluate(() => document.cookie)).toBe("");
  const status = await page.evaluate(async () => {
    const response = await fetch("/api/v2/write", { method: "POST", body: `forged v=1 ${Date.now() * 1e6}` });
    return response.status;
  });
  expect(status).toBe(403);
  expect(await signalNames(server, reader)).toEqual(["signed.in.v"]);
});

test("a page on another origin can neither write nor watch the live feed", async ({ page }) => {
  server = await Server.start(tempDatabase(), await freePort());
  // Another site: a real server on another loopback port (a page Playwright made up would count as a
  // public address, and Chromium would not let it reach loopback at all).
  const port = await freePort();
  const elsewhere = http.createServer((_, response) => {
    response.writeHead(200, { "content-type": "text/html" });
    response.end("<!DOCTYPE html><title>elsewhere</title>");
  });
  await new Promise<void>((resolve) => elsewhere.listen(port, "127.0.0.1", resolve));
  await page.goto(`http://127.0.0.1:${port}/`);
  const outcome = await page.evaluate(async (target) => {
    const line = `forged v=1 ${Date.now() * 1e6}`;
    for (const path of ["/write", "/api/v2/write"]) {
      // The page never sees the answer: Chromium turns a refused one (403, JSON) into a network error.
      await fetch(target + path, { method: "POST", mode: "no-cors", body: line }).catch(() => undefined);
    }
    const opened = await new Promise<boolean>((resolve) => {
      const socket = new WebSocket(target.replace("http", "ws") + "/api/live");
      socket.onopen = () => resolve(true);
      socket.onerror = () => resolve(false);
    });
    return { opened };
  }, server.url);
  elsewhere.close();
  expect(outcome.opened).toBe(false);
  expect(await signalNames(server)).toEqual([]);
});
