import assert from "node:assert/strict";
import { test } from "node:test";
import { HostIpc, type IpcMessage } from "../src/lib/ipc";

function nextMessage(port: MessagePort): Promise<IpcMessage> {
  return new Promise((resolve) => {
    port.onmessage = (e: MessageEvent) => resolve(JSON.parse(String(e.data)) as IpcMessage);
  });
}

test("host messages reach the listener and get an isReply answer with the same id", async () => {
  const channel = new MessageChannel();
  const guest = new HostIpc(channel.port1);
  const seen: unknown[] = [];
  guest.listen("experimental.DataReloaded", (payload) => {
    seen.push(payload);
    return "ok";
  });
  const reply = nextMessage(channel.port2);
  channel.port2.postMessage(
    JSON.stringify({ type: "experimental.DataReloaded", id: 7, payload: null, error: null, isReply: false }),
  );
  const message = await reply;
  assert.deepEqual(seen, [null]);
  assert.deepEqual(message, { type: "experimental.DataReloaded", id: 7, payload: "ok", error: null, isReply: true });
  channel.port1.close();
  channel.port2.close();
});

test("messages without a listener are still answered; guest requests resolve with the host's reply", async () => {
  const channel = new MessageChannel();
  const guest = new HostIpc(channel.port1);
  const unknownReply = nextMessage(channel.port2);
  channel.port2.postMessage(JSON.stringify({ type: "x.Unknown", id: 1, payload: 3, error: null, isReply: false }));
  assert.deepEqual(await unknownReply, { type: "x.Unknown", id: 1, payload: null, error: null, isReply: true });

  const request = nextMessage(channel.port2);
  const answer = guest.send("experimental.GetRuns");
  const sent = await request;
  assert.equal(sent.type, "experimental.GetRuns");
  assert.equal(sent.isReply, false);
  channel.port2.postMessage(JSON.stringify({ ...sent, payload: ["a", "b"], isReply: true }));
  assert.deepEqual(await answer, ["a", "b"]);
  channel.port1.close();
  channel.port2.close();
});
