import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { type LoadOptions, type LoadResult, runLoad } from "../../bench/_load.ts";

// The claim of the load benchmark: 200 clients connected at once to one server (each its own
// connection, all in one swarm process), every client sampled every round, every round complete,
// and the server's peak memory flat in the number of clients. Nothing here is timed: a run is
// bounded by its rounds, and the deadlines below only stop a hung run.
//
// "Flat in N" means no memory of O(N x parameters): updates are pulled one at a time and folded
// into an O(parameters) sum. Some memory is legitimately O(N), and the bound allows for it:
//
// - per connection, the channel's 64 KiB frame-reader buffer, for as long as it is connected;
// - per connection with a message in flight, up to four more frame-sized buffers on the send
//   path (the first-frame buffer, the chunk buffer, the ciphertext and its framed copy);
//
// 190 extra connections x 5 x 64 KiB = 59 MiB, plus 64 MiB of slack for what the allocator keeps
// of freed buffers and for garbage between collections (the server collects every 100 ms here,
// and V8's young generation is capped at 1 MiB semi-spaces, so that V8 growing its own heap under
// a burst of 200 handshakes is not counted as server memory): 123 MiB, so the bound is 128 MiB.
//
// The model makes any O(N x parameters) behaviour break the bound: 64-4096-10 has 307,210
// parameters, 1.2 MB a copy, so 200 updates (or 200 copies of the model in the round's task
// messages) alive at once are 234 MiB on top of the legitimate growth. Measured on two cores:
// a server holding every update until aggregation grew by about 260 MiB; one pulling updates
// one at a time and sending the tasks a few at a time, by 55-75 MiB.
const BOUND_MIB = 128;
const ROUNDS = 2;
// Alone on two cores the runs take about 3 s and 15 s, and a round of 200 clients took 21 s on
// a busy machine: ten minutes for the server's round, upload and handshake timeouts and for each
// run as a whole can only be reached by a hang.
const HANG_MS = 600_000;
const shape: Omit<LoadOptions, "clients"> = {
  rounds: ROUNDS,
  fraction: 1,
  features: 64,
  hidden: 4096,
  classes: 10,
  examples: 4,
  gcMs: 100,
  timeoutMs: HANG_MS,
  killAfterMs: HANG_MS,
  v8Flags: ["--max-semi-space-size=1"],
};

function checkComplete({ server, swarm }: LoadResult, clients: number): void {
  strictEqual(server.params, 307_210);
  strictEqual(server.rounds, ROUNDS);
  deepStrictEqual(server.sampled, Array(ROUNDS).fill(clients), "every client sampled");
  deepStrictEqual(server.updates, Array(ROUNDS).fill(clients), "every update aggregated");
  deepStrictEqual(server.dropped, Array(ROUNDS).fill(0));
  deepStrictEqual(server.attempts, Array(ROUNDS).fill(1), "no round retried");
  strictEqual(swarm.finished, clients);
  strictEqual(swarm.updates, ROUNDS * clients);
  strictEqual(swarm.connections, clients, "no client reconnected");
}

Deno.test("200 concurrent clients: every round complete, peak server RSS flat in N", async () => {
  const few = await runLoad({ ...shape, clients: 10 });
  checkComplete(few, 10);
  const many = await runLoad({ ...shape, clients: 200 });
  checkComplete(many, 200);
  const growth = many.server.peak_rss_mb - few.server.peak_rss_mb;
  console.log(
    `peak RSS ${few.server.peak_rss_mb} MiB with 10 clients, ${many.server.peak_rss_mb} MiB ` +
      `with 200: +${growth.toFixed(1)} MiB (bound ${BOUND_MIB} MiB)`,
  );
  ok(
    growth < BOUND_MIB,
    `peak RSS grew by ${growth.toFixed(1)} MiB from 10 to 200 clients ` +
      `(${few.server.peak_rss_mb} -> ${many.server.peak_rss_mb} MiB, ${few.server.params} ` +
      `parameters); at most ${BOUND_MIB} MiB is O(N) connection state`,
  );
});
