using System.CommandLine;

namespace Orleans.Pipeline.Silo;

/// <summary>
/// The command line, on System.CommandLine: every command and its options declared once, so that <c>--help</c> (on
/// the root and on every command) prints usage and exits 0 without starting anything, an unknown command or option
/// is refused with exit code 2 and names itself, and the commands get their own arguments to parse further (each
/// command's parser checks values and names the option it refuses). <c>run</c> and <c>gateway</c> take configuration
/// overrides as further arguments (<c>--Pipeline:Mode=PostgreSql</c>).
/// </summary>
internal static class Cli
{
    /// <summary>What to run: the command and its arguments, or an exit code when help was printed or the line was refused.</summary>
    internal sealed record Parsed(string Command, string[] Rest, int? Exit);

    public static async Task<Parsed> ParseAsync(string[] args)
    {
        string? selected = null;
        void Select(string name) => selected = name;
        var root = new RootCommand("Orleans.Pipeline: event-time window aggregates per key on Orleans. Without a command: run.")
        {
            TreatUnmatchedTokensAsErrors = false,
        };
        root.SetAction(_ => Select("run"));

        Add(root, Select, "run", "A silo with the gRPC gateway (Pipeline:Gateway) and health endpoints (Pipeline:Health); embedded by default, Pipeline:Mode=PostgreSql joins a PostgreSQL cluster. Further arguments are configuration overrides: --Pipeline:Mode=PostgreSql.",
            overrides: true);
        Add(root, Select, "gateway", "The gRPC gateway alone, connected to the cluster as an Orleans client. Further arguments are configuration overrides.", overrides: true);
        Add(root, Select, "migrate", "PostgreSQL mode: bring the database schema to this build's version (Pipeline:ConnectionString).");
        var hashKey = Add(root, Select, "hash-key", "A new API key (or the given one) and the hash to configure for it.");
        hashKey.Arguments.Add(new Argument<string>("key") { Description = "the key to hash (a new random key when omitted)", Arity = ArgumentArity.ZeroOrOne });
        Add(root, Select, "demo", "A silo plus a synthetic workload published through the client SDK, with live progress.", options:
            [Value("--seconds", "how long to publish (20)"), Value("--keys", "distinct keys (500)"), Value("--rate", "events/s, 0 = as fast as possible (20000)"),
             Value("--disorder", "event-time disorder in ms (300)"), Flag("--postgres", "PostgreSQL mode: on Pipeline:ConnectionString, or else a throwaway local server")]);
        Add(root, Select, "gateway-load", "A load generator for a running gateway.", options:
            [Value("--url", "the gateway (http://127.0.0.1:5080)"), Value("--seconds", "duration (10)"), Value("--keys", "distinct keys (500)"), Value("--batch", "events per request (500)"),
             Value("--concurrency", "requests in flight (16)"), Value("--pipeline", "pipeline (demo)"), Value("--api-key", "API key, when the gateway has keys")]);
        Add(root, Select, "bench", "The end-to-end load benchmark (engine, naive, embedded, gateway, PostgreSQL) from 1k to 1M keys.", options:
            [Flag("--quick", "1k and 10k keys, 200,000 events: under a minute"), Value("--keys", "key counts (1000,10000,100000,1000000)"), Value("--events", "events per key count (2000000)"),
             Value("--systems", "engine,naive,embedded,gateway,postgres"), Value("--out", "output folder (bench-results)")]);
        Add(root, Select, "chaos", "Silos, producers and PostgreSQL as processes, hurt while they work (SIGKILL, SIGTERM, producer kills, PostgreSQL paused, a silo added); results checked against the engine.", options:
            [Value("--minutes", "how long faults go on (2)"), Value("--seed", "workload and fault seed (1)"), Value("--keys", "keys per producer (2000)"), Value("--silos", "silos at start (3)"),
             Value("--rate", "events/s per producer (2000)"), Flag("--break-dedupe", "resend under a new request id, to show that the check fails")]);
        Add(root, Select, "rehearse", "A kustomize overlay played with processes: migrate, scale 3 → 5 → 2, rolling restart; results checked against the engine.", options:
            [Value("--overlay", "the overlay (deploy/k8s/overlays/dev)"), Value("--minutes", "duration (3)"), Value("--keys", "keys (500)"), Value("--rate", "events/s (1500)"),
             Value("--seed", "workload seed (1)"), Value("--drain-delay", "hh:mm:ss (the manifest's)")]);
        Add(root, Select, "bench-publish", "(internal) the benchmark's gateway publisher", hidden: true, overrides: true);
        Add(root, Select, "chaos-produce", "(internal) the chaos command's gateway producer", hidden: true, overrides: true);

        var result = root.Parse(args);
        if (result.Errors.Count > 0)
        {
            foreach (var error in result.Errors) Console.Error.WriteLine($"error: {error.Message}");
            Console.Error.WriteLine($"see '{result.CommandResult.Command.Name} --help'");
            return new Parsed("", [], 2);
        }

        var code = await result.InvokeAsync();
        if (selected is null) return new Parsed("", [], code); // --help printed
        if (result.CommandResult.Command == root)
        {
            // No command word: the arguments are configuration overrides, and a bare word is a mistyped command.
            if (args.FirstOrDefault(a => !a.StartsWith('-') && !a.Contains('=', StringComparison.Ordinal) && !IsOverrideValue(args, a)) is { } word)
            {
                Console.Error.WriteLine($"error: unknown command '{word}' (commands: {string.Join(", ", root.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}; see --help)");
                return new Parsed("", [], 2);
            }

            return new Parsed("run", args, null);
        }

        var at = Array.IndexOf(args, selected);
        return new Parsed(selected, args[(at + 1)..], null);
    }

    private static Command Add(Command parent, Action<string> select, string name, string description, bool hidden = false, bool overrides = false, Option[]? options = null)
    {
        var command = new Command(name, description) { Hidden = hidden, TreatUnmatchedTokensAsErrors = !overrides };
        foreach (var option in options ?? []) command.Options.Add(option);
        command.SetAction(_ => select(name));
        parent.Subcommands.Add(command);
        return command;
    }

    /// <summary>Whether <paramref name="word"/> is the value of a "--Key value" override before it.</summary>
    private static bool IsOverrideValue(string[] args, string word)
    {
        var at = Array.IndexOf(args, word);
        return at > 0 && args[at - 1].StartsWith("--", StringComparison.Ordinal) && !args[at - 1].Contains('=', StringComparison.Ordinal);
    }

    /// <summary>An option with a value, checked by the command's own parser (which names it when the value is wrong).</summary>
    private static Option<string> Value(string name, string description) => new(name) { Description = description };

    private static Option<bool> Flag(string name, string description) => new(name) { Description = description };
}
