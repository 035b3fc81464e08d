using Orleans.Pipeline.CommandLine;
using Orleans.Pipeline.Tools;

// orleans-pipeline-tools bench [--quick]     the end-to-end load benchmark (engine, naive, embedded, gateway, PostgreSQL) from 1k to 1M keys
// orleans-pipeline-tools chaos [--minutes N] silos, producers and PostgreSQL as processes, hurt while they work; results checked against the engine
// orleans-pipeline-tools rehearse [..]       a kustomize overlay played with processes: migrate, scale 3 → 5 → 2, rolling restart; results checked
// orleans-pipeline-tools nexmark [..]        the Nexmark queries that are pipelines, per core beside Flink's and Feldera's published figures
// orleans-pipeline-tools demo [options]      the silo's demo; with --postgres and no connection string, on a throwaway local PostgreSQL
// These start throwaway PostgreSQL servers (as the postgres user when run as root) and processes, so they live here
// and not in the silo users deploy.
// Exit codes: 0 done, 1 a check failed (bench: windows differ; chaos, rehearse: mismatches), 2 bad command line, 3 could not run.
var cli = new Cli("Orleans.Pipeline tools: benchmark, chaos run, Kubernetes rehearsal, and the demo on a throwaway PostgreSQL.", defaultCommand: null);
cli.Add("bench", "The end-to-end load benchmark (engine, naive, embedded, gateway, PostgreSQL) from 1k to 1M keys.", options:
    [Cli.Flag("--quick", "1k and 10k keys, 200,000 events: under a minute"), Cli.Value("--keys", "key counts (1000,10000,100000,1000000)"), Cli.Value("--events", "events per key count (2000000)"),
     Cli.Value("--systems", "engine,naive,embedded,gateway,postgres"), Cli.Value("--partitions", "partitions of the benchmark's pipeline (16)"), Cli.Value("--shed-keys-at", "memory use (% of what the process may use) at which keys are shed; 0: off (80)"), Cli.Value("--out", "output folder (bench-results)")]);
cli.Add("chaos", "Silos, producers and PostgreSQL as processes, hurt while they work (SIGKILL, SIGTERM, producer kills, PostgreSQL paused, a silo added); results checked against the engine.", options:
    [Cli.Value("--minutes", "how long faults go on (2)"), Cli.Value("--seed", "workload and fault seed (1)"), Cli.Value("--keys", "keys per producer (2000)"), Cli.Value("--silos", "silos at start (3)"),
     Cli.Value("--rate", "events/s per producer (2000)"), Cli.Flag("--break-dedupe", "resend under a new request id, to show that the check fails")]);
cli.Add("rehearse", "A kustomize overlay played with processes: migrate, scale 3 → 5 → 2, rolling restart; results checked against the engine.", options:
    [Cli.Value("--overlay", "the overlay (deploy/k8s/overlays/dev)"), Cli.Value("--minutes", "duration (3)"), Cli.Value("--keys", "keys (500)"), Cli.Value("--rate", "events/s (1500)"),
     Cli.Value("--seed", "workload seed (1)"), Cli.Value("--drain-delay", "hh:mm:ss (the manifest's)")]);
cli.Add("nexmark", "The Nexmark queries that are pipelines (q0, q11, q12; q5 and q7 per auction) in embedded and PostgreSQL mode, events/s per core beside Flink's and Feldera's published figures.", options:
    [Cli.Value("--events", "source events per query (1000000)"), Cli.Value("--systems", "embedded,postgres"), Cli.Value("--queries", "q0,q5,q7,q11,q12"), Cli.Value("--rounds", "rounds, the best of each query kept (2)"), Cli.Value("--out", "output folder (nexmark-results)")]);
cli.Add("demo", "The silo's demo (same options); with --postgres and no Pipeline:ConnectionString, on a throwaway local PostgreSQL server.", overrides: true);
cli.Add("bench-publish", "(internal) the benchmark's gateway publisher", hidden: true, overrides: true);
cli.Add("chaos-produce", "(internal) the chaos command's gateway producer", hidden: true, overrides: true);

var parsed = await cli.ParseAsync(args);
if (parsed.Exit is { } exit) return exit;
var rest = parsed.Rest;
return parsed.Command switch
{
    "bench" => await Cli.RunToolAsync(() => BenchOptions.Parse(rest), BenchOptions.Usage, Bench.RunAsync, _ => false),
    "bench-publish" => await Bench.PublishThroughGatewayAsync(rest),
    "chaos" => await Cli.RunToolAsync(() => ChaosOptions.Parse(rest), ChaosOptions.Usage, Chaos.RunAsync, e => e is InvalidOperationException),
    "chaos-produce" => await Chaos.ProduceAsync(rest),
    "rehearse" => await Cli.RunToolAsync(() => RehearseOptions.Parse(rest), RehearseOptions.Usage, Rehearse.RunAsync, e => e is InvalidOperationException),
    "nexmark" => await Cli.RunToolAsync(() => NexmarkOptions.Parse(rest), NexmarkOptions.Usage, NexmarkBench.RunAsync, _ => false),
    "demo" => await ThrowawayDemo.RunAsync(rest),
    _ => 2,
};
