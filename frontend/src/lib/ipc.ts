// Guest side of TensorBoard's experimental plugin IPC (components/experimental/plugin_util).
// The guest hands the host a MessagePort with `postMessage('experimental.bootstrap', '*', [port])`.
// Messages are JSON strings {type, id, payload, error, isReply}; every host message gets a reply.

export interface IpcMessage {
  type: string;
  id: number;
  payload: unknown;
  error: string | null;
  isReply: boolean;
}

export type IpcHandler = (payload: unknown) => unknown;

export class HostIpc {
  private nextId = 0;
  private readonly waits = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly handlers = new Map<string, IpcHandler>();

  constructor(private readonly port: MessagePort) {
    port.onmessage = (event: MessageEvent) => void this.onMessage(event);
  }

  listen(type: string, handler: IpcHandler): void {
    this.handlers.set(type, handler);
  }

  send(type: string, payload: unknown = null): Promise<unknown> {
    const id = this.nextId++;
    const message: IpcMessage = { type, id, payload, error: null, isReply: false };
    this.port.postMessage(JSON.stringify(message));
    return new Promise((resolve, reject) => this.waits.set(id, { resolve, reject }));
  }

  private async onMessage(event: MessageEvent): Promise<void> {
    let message: IpcMessage;
    try {
      message = JSON.parse(String(event.data)) as IpcMessage;
    } catch {
      return;
    }
    if (!message || typeof message !== "object" || typeof message.type !== "string") return;
    if (message.isReply) {
      const wait = this.waits.get(message.id);
      if (!wait) return;
      this.waits.delete(message.id);
      if (message.error) wait.reject(new Error(String(message.error)));
      else wait.resolve(message.payload);
      return;
    }
    let payload: unknown = null;
    let error: string | null = null;
    const handler = this.handlers.get(message.type);
    if (handler) {
      try {
        payload = (await handler(message.payload)) ?? null;
      } catch (e) {
        error = String(e);
      }
    }
    const reply: IpcMessage = { type: message.type, id: message.id, payload, error, isReply: true };
    this.port.postMessage(JSON.stringify(reply));
  }
}

/** Connect to the TensorBoard host; null when not embedded (or the parent is unreachable). */
export function connectToHost(): HostIpc | null {
  try {
    if (window.parent === window) return null;
    const channel = new MessageChannel();
    const ipc = new HostIpc(channel.port1);
    window.parent.postMessage("experimental.bootstrap", "*", [channel.port2]);
    return ipc;
  } catch {
    return null;
  }
}
