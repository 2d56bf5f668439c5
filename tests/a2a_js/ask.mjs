// A conversation with a threadhost agent through its A2A door, by the A2A project's own
// JavaScript client (@a2a-js/sdk): its card, a task, the same context again, a task
// that needs input and the message that answers it, the task read back. Prints what it
// saw as JSON. Run: node ask.mjs <base URL> <agent> <agent that asks>. The agent URL ends
// with a slash: this client resolves the card path relative to it.
import { Role, TaskState } from "@a2a-js/sdk";
import { ClientFactory } from "@a2a-js/sdk/client";

const [base, agent, asker] = process.argv.slice(2);
const factory = new ClientFactory();

function message(text, contextId = "", taskId = "") {
  return {
    tenant: "",
    configuration: undefined,
    metadata: undefined,
    message: {
      messageId: crypto.randomUUID(),
      contextId,
      taskId,
      role: Role.ROLE_USER,
      parts: [{ content: { $case: "text", value: text } }],
      metadata: undefined,
      extensions: [],
      referenceTaskIds: [],
    },
  };
}

const task = (result) => (result.$case === "task" ? result.value : result);
const text = (t) =>
  t.artifacts.flatMap((a) => a.parts).map((p) => p.content?.value ?? "").join("");
const state = (t) => TaskState[t.status.state];

const client = await factory.createFromUrl(`${base}/v1/a2a/${agent}/`);
const first = task(await client.sendMessage(message("hello")));
const again = task(await client.sendMessage(message("again", first.contextId)));
const asking = await factory.createFromUrl(`${base}/v1/a2a/${asker}/`);
const asked = task(await asking.sendMessage(message("Cancel my order")));
const done = task(await asking.sendMessage(message("Order 1001", asked.contextId, asked.id)));
const read = await asking.getTask({ tenant: "", id: asked.id, historyLength: undefined });
console.log(
  JSON.stringify({
    first: { id: first.id, context: first.contextId, state: state(first), text: text(first) },
    again: { context: again.contextId, text: text(again) },
    asked: { state: state(asked), question: asked.status.message?.parts[0]?.content?.value },
    done: { id: done.id, state: state(done), text: text(done) },
    read: { state: state(read), history: read.history.length },
  }),
);
