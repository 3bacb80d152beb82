// Starts and stops real Signalboard servers for the browser tests: the binary that `cargo leptos build`
// made, run from the repository root (so it finds Leptos.toml and target/site), on a free port, over a
// SQLite file in a fresh temporary directory, or a new database of the PostgreSQL cluster that
// `make test` starts; and nginx in front of several of them, as deploy/nginx.sh runs it.
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

const root = path.resolve(__dirname, "..", "..");
const binary = process.env.SIGNALBOARD_BIN ?? path.join(root, "target", "debug", "signalboard");

// Each test's database folder goes when its worker process exits (its servers are stopped by then):
// otherwise every run leaves one or two per test behind, ~1 MB each.
const folders: string[] = [];
process.on("exit", () => {
  for (const dir of folders) fs.rmSync(dir, { recursive: true, force: true });
});

export function tempDatabase(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "signalboard-e2e-"));
  folders.push(dir);
  return `sqlite://${path.join(dir, "e2e.db")}`;
}

/** A new database on the test PostgreSQL cluster (`SIGNALBOARD_TEST_POSTGRES`); returns its URL. */
export function postgresDatabase(): string {
  const cluster = process.env.SIGNALBOARD_TEST_POSTGRES;
  if (!cluster) throw new Error("SIGNALBOARD_TEST_POSTGRES names no PostgreSQL cluster: run `make test`");
  const name = `e2e_${process.pid}_${Date.now()}`;
  execFileSync("psql", ["-q", cluster, "-c", `CREATE DATABASE ${name}`]);
  return cluster.replace(/\/[^/]*$/, `/${name}`);
}

/** Makes an access token with the real `signalboard token create`; returns the token. */
export function createToken(database: string, name: string, scope: "read" | "write" | "admin"): string {
  const args = ["token", "create", "--name", name, "--scope", scope, "--database-url", database];
  return execFileSync(binary, args, { cwd: root, stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Waits until `url` answers 200, or `child` exits. */
async function healthy(child: ChildProcess, url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  throw new Error(`${url} did not answer`);
}

export type Settings = Record<string, string | number | boolean>;

/** The repo's Leptos.toml with `settings` in place of its own, as a file of its own. */
function settingsFile(settings: Settings): string {
  let text = fs.readFileSync(path.join(root, "Leptos.toml"), "utf8");
  for (const [key, value] of Object.entries(settings)) {
    const line = new RegExp(`^${key} = .*$`, "m");
    if (!line.test(text)) throw new Error(`Leptos.toml has no setting ${key}`);
    text = text.replace(line, `${key} = ${JSON.stringify(value)}`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "signalboard-e2e-config-"));
  folders.push(dir);
  const file = path.join(dir, "Leptos.toml");
  fs.writeFileSync(file, text);
  return file;
}

export class Server {
  constructor(
    readonly process: ChildProcess,
    readonly url: string,
  ) {}

  /**
   * `settings` change those of the repo's Leptos.toml. Unless a test asks for them, the server writes
   * no `signalboard.*` signals of its own: tests count the signals they write.
   */
  static async start(database: string, port: number, settings: Settings = {}): Promise<Server> {
    const config = settingsFile({ "self-signals-secs": 0, ...settings });
    const args = ["serve", "--addr", `127.0.0.1:${port}`, "--database-url", database, "--config", config];
    const child = spawn(binary, args, {
      cwd: root,
      env: { ...process.env, RUST_LOG: "warn" },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const server = new Server(child, `http://127.0.0.1:${port}`);
    await healthy(child, `${server.url}/healthz`);
    return server;
  }

  /** nginx (deploy/nginx.sh) on a free port in front of `backends`, as a server to post to. */
  static async balancing(backends: Server[]): Promise<Server> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "signalboard-e2e-nginx-"));
    folders.push(dir);
    const port = await freePort();
    const addresses = backends.map((b) => new URL(b.url).host);
    const child = spawn(path.join(root, "deploy", "nginx.sh"), [dir, String(port), ...addresses], {
      cwd: root,
      stdio: ["ignore", "inherit", "inherit"],
    });
    const server = new Server(child, `http://127.0.0.1:${port}`);
    await healthy(child, `${server.url}/healthz`);
    return server;
  }

  /** POSTs samples to the ingest API and checks they were committed. */
  async post(samples: object): Promise<void> {
    const response = await fetch(`${this.url}/api/telemetry`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(samples),
    });
    if (response.status !== 200) {
      throw new Error(`POST answered ${response.status}: ${await response.text()}`);
    }
  }

  /** Stops the server: SIGTERM shuts down gracefully, SIGKILL is a crash. */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise((r) => this.process.once("exit", r));
    this.process.kill(signal);
    await exited;
  }
}
