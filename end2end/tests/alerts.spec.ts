// Alerting on the dashboard: a rule made in a chart's form fires on posted points, shows on the page
// and its chart, and its webhook is delivered once; annotations, posted or clicked, appear on charts.
import { expect, test } from "@playwright/test";
import * as http from "node:http";
import { AddressInfo } from "node:net";
import { freePort, Server, tempDatabase } from "./server";

let server: Server;
let receiver: http.Server | undefined;

test.afterEach(async () => {
  await server?.stop("SIGKILL");
  receiver?.close();
});

/** A webhook receiver on loopback: its URL, and the bodies it got. */
async function startReceiver(): Promise<{ url: string; bodies: object[] }> {
  const bodies: object[] = [];
  receiver = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      bodies.push(JSON.parse(body));
      response.end("ok");
    });
  });
  await new Promise<void>((resolve) => receiver!.listen(0, "127.0.0.1", resolve));
  const { port } = receiver.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hook`, bodies };
}

test("a rule made in the chart's form fires on posted points, shows on the chart, and its webhook comes once", async ({
  page,
}) => {
  server = await Server.start(tempDatabase(), await freePort());
  const { url, bodies } = await startReceiver();
  const now = Date.now();
  const samples = [];
  for (let t = now - 30_000; t <= now - 1_000; t += 1000) samples.push({ timestamp: t, signals: { "e2e.boiler": 50 } });
  await server.post(samples);
  await page.goto(`${server.url}/?range=5m`);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
  const chart = page.locator('article.chart[data-signal="e2e.boiler"]');

  // The form opens pre-filled from the chart: the signal's name and its last value.
  await chart.locator(".rule-toggle").click();
  await expect(chart.getByLabel("Rule name")).toHaveValue("e2e.boiler high");
  await expect(chart.getByLabel("Threshold")).toHaveValue("50");
  await chart.getByLabel("Threshold").fill("80");
  await chart.getByLabel("Webhook").fill(url);
  await chart.getByRole("button", { name: "Create rule" }).click();
  await expect(chart.locator(".rule-toggle")).toHaveText("Alerts (1)");
  // The threshold is drawn, on an axis stretched to hold it.
  await expect(chart.locator(".threshold")).toHaveCount(1);
  await expect(page.locator(".firing-banner")).toHaveCount(0);

  await server.post({ timestamp: Date.now(), signals: { "e2e.boiler": 95 } });
  await expect(page.locator('.firing-banner li[data-signal="e2e.boiler"]')).toContainText("e2e.boiler high");
  await expect(chart.locator(".firing-span")).toHaveCount(1);
  await expect.poll(() => bodies.length, { timeout: 10_000 }).toBe(1);
  expect(bodies[0]).toMatchObject({ state: "firing", signal: "e2e.boiler", value: 95, rule: { name: "e2e.boiler high" } });
  // The alert's own annotation is on the chart too.
  await expect(chart.locator(".annotation")).toHaveCount(1);
  await expect(chart.locator(".annotation")).toHaveAttribute("title", /FIRING/);
  // Still above: no second notification.
  await server.post({ timestamp: Date.now(), signals: { "e2e.boiler": 96 } });
  await page.waitForTimeout(2_500);
  expect(bodies.length).toBe(1);

  // Silenced, then deleted, from the form.
  await chart.getByRole("button", { name: "Silence 1 h" }).click();
  await expect(chart.getByRole("button", { name: "Unsilence" })).toBeVisible();
  await chart.getByRole("button", { name: "Delete" }).click();
  await expect(chart.locator(".rule-toggle")).toHaveText("Alerts (0)");
  await expect(page.locator(".firing-banner")).toHaveCount(0);
  await expect(chart.locator(".threshold")).toHaveCount(0);

  // A band: two lines.
  await chart.getByLabel("Condition").selectOption("outside");
  await chart.getByLabel("Threshold").fill("40");
  await chart.getByLabel("High").fill("60");
  await chart.getByRole("button", { name: "Create rule" }).click();
  await expect(chart.locator(".rule-toggle")).toHaveText("Alerts (1)");
  await expect(chart.locator(".threshold")).toHaveCount(2);
  await expect(chart.locator(".rules li")).toContainText("outside 40…60");
});

test("annotations posted by the API, or by alt-clicking a chart, appear on the charts", async ({ page }) => {
  server = await Server.start(tempDatabase(), await freePort());
  const now = Date.now();
  const samples = [];
  for (let t = now - 60_000; t <= now - 1_000; t += 1000) samples.push({ timestamp: t, signals: { "e2e.a": t % 7, "e2e.b": t % 5 } });
  await server.post(samples);
  await page.goto(`${server.url}/?range=5m`);
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");

  const posted = await page.request.post(`${server.url}/api/annotations`, {
    data: { time: now - 30_000, text: "deploy 1.4", signals: ["e2e.a"] },
  });
  expect(posted.status()).toBe(201);
  const a = page.locator('article.chart[data-signal="e2e.a"] .annotation');
  await expect(a).toHaveCount(1);
  await expect(a).toHaveAttribute("title", /deploy 1\.4/);
  await expect(page.locator('article.chart[data-signal="e2e.b"] .annotation')).toHaveCount(0);

  page.once("dialog", (dialog) => dialog.accept("valve opened"));
  const canvas = page.locator('article.chart[data-signal="e2e.b"] canvas');
  const box = (await canvas.boundingBox())!;
  await page.keyboard.down("Alt");
  await canvas.click({ position: { x: box.width * 0.6, y: box.height / 2 } });
  await page.keyboard.up("Alt");
  const b = page.locator('article.chart[data-signal="e2e.b"] .annotation');
  await expect(b).toHaveCount(1);
  await expect(b).toHaveAttribute("title", /valve opened/);
});
