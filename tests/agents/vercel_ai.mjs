// The Vercel AI SDK's default OpenAI model (the Responses API) through skyrelay: one whole answer, one stream and a
// tool round trip; prints what it got as JSON. Run by tests/e2e/test_agent_sdks.py with SKYRELAY_BASE_URL,
// SKYRELAY_API_KEY and SKYRELAY_MODEL set.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";

const provider = createOpenAI({ baseURL: process.env.SKYRELAY_BASE_URL, apiKey: process.env.SKYRELAY_API_KEY });
const model = provider(process.env.SKYRELAY_MODEL);
const store = { openai: { store: false } };

const whole = await generateText({ model, prompt: "hello", providerOptions: store });
const stream = streamText({ model, prompt: "hello", providerOptions: store });
let streamed = "";
for await (const piece of stream.textStream) streamed += piece;
const weather = tool({
  description: "Get the current weather for a city",
  inputSchema: jsonSchema({ type: "object", properties: { city: { type: "string" } }, required: ["city"] }),
  execute: async ({ city }) => ({ city, temperature_c: 21 }),
});
const agent = await generateText({ model, prompt: "What is the weather in Lisbon?", tools: { get_weather: weather },
                                  stopWhen: stepCountIs(3), providerOptions: store });
console.log(JSON.stringify({
  whole: whole.text, inputTokens: whole.usage.inputTokens, streamed,
  calls: agent.steps.flatMap((s) => s.toolCalls.map((c) => c.toolName)), final: agent.text,
}));
