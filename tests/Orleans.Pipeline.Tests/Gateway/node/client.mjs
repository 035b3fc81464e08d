// A gateway client in another language: lists pipelines, subscribes to results, publishes, queries, and prints
// what it saw as one JSON line for the test to check.
// usage: node client.mjs <host:port> <proto root> <google api protos root>
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const [address, protoRoot, googleRoot] = process.argv.slice(2);
const definition = protoLoader.loadSync('orleans/pipeline/v1/gateway.proto', {
  includeDirs: [protoRoot, googleRoot], keepCase: false, longs: Number, defaults: true,
});
const { PipelineGateway } = grpc.loadPackageDefinition(definition).orleans.pipeline.v1;
const gateway = new PipelineGateway(address, grpc.credentials.createInsecure());
const call = (method, request) => new Promise((resolve, reject) =>
  gateway[method](request, (error, response) => (error ? reject(error) : resolve(response))));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const output = { pipelines: [], accepted: 0, finals: {}, invalid: null, query: null };
output.pipelines = (await call('listPipelines', {})).pipelines.map((p) => p.name);

const stream = gateway.subscribe({ pipeline: 'tumbling', keys: ['node'] });
stream.on('data', (batch) => {
  for (const r of batch.results) {
    if (r.kind === 'FINAL') output.finals[`${r.startMs}-${r.endMs}`] = { count: r.eventCount, sum_a: r.values.sum_a };
  }
});
stream.on('error', () => {});
await sleep(1000);

const events = [];
for (let t = 0; t < 30; t++) events.push({ key: 'node', timeMs: t, fields: { a: 1, b: 2 } });
output.accepted += (await call('publish', { pipeline: 'tumbling', requestId: 'node-1', events })).accepted;
try {
  await call('publish', { pipeline: 'tumbling', events: [{ key: 'node', timeMs: 40, fields: { a: 1 } }] });
} catch (error) {
  output.invalid = { code: error.code, details: error.details };
}

// Close the three windows; repeat (later and later) until their results arrive.
for (let t = 100; Object.keys(output.finals).length < 3 && t < 3000; t += 100) {
  output.accepted += (await call('publish', { pipeline: 'tumbling', events: [{ key: 'node', timeMs: t, fields: { a: 0, b: 0 } }] })).accepted;
  await sleep(500);
}

const windows = await call('queryKey', { pipeline: 'tumbling', key: 'node' });
output.query = { appliedEvents: windows.appliedEvents, lateEvents: windows.lateEvents };
stream.cancel();
console.log(JSON.stringify(output));
process.exit(0);
