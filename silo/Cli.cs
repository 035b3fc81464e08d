using System.CommandLine;

namespace Orleans.Pipeline.CommandLine;

/// <summary>
/// The command line of an executable, on System.CommandLine: every command and its options declared once, so that
/// <c>--help</c> (on the root and on every command) prints usage and exits 0 without starting anything, an unknown
/// command or option is refused with exit code 2 and names itself, and the commands get their own arguments to parse
/// further (each command's parser checks values and names the option it refuses). Commands declared with
/// <c>overrides</c> take configuration overrides as further arguments (<c>--Pipeline:Mode=PostgreSql</c>).
/// Shared as source by the silo and the tools.
/// </summary>
internal sealed class Cli
{
    private readonly RootCommand _root;
    private string? _selected;

    /// <summary>What to run: the command and its arguments, or an exit code when help was printed or the line was refused.</summary>
    internal sealed record Parsed(string Command, string[] Rest, int? Exit);

    /// <param name="description">What the executable does.</param>
    /// <param name="defaultCommand">The command a line without a command word runs (its arguments then are overrides); null: a command is required.</param>
    public Cli(string description, string? defaultCommand)
    {
        DefaultCommand = defaultCommand;
        _root = new RootCommand(description) { TreatUnmatchedTokensAsErrors = defaultCommand is null };
        _root.SetAction(_ => _selected = defaultCommand ?? "");
    }

    private string? DefaultCommand { get; }

    /// <summary>Declares a command.</summary>
    public Command Add(string name, string description, bool hidden = false, bool overrides = false, Option[]? options = null)
    {
        var command = new Command(name, description) { Hidden = hidden, TreatUnmatchedTokensAsErrors = !overrides };
        foreach (var option in options ?? []) command.Options.Add(option);
        command.SetAction(_ => _selected = name);
        _root.Subcommands.Add(command);
        return command;
    }

    /// <summary>An option with a value, checked by the command's own parser (which names it when the value is wrong).</summary>
    public static Option<string> Value(string name, string description) => new(name) { Description = description };

    public static Option<bool> Flag(string name, string description) => new(name) { Description = description };

    private string Commands => string.Join(", ", _root.Subcommands.Where(c => !c.Hidden).Select(c => c.Name));

    public async Task<Parsed> ParseAsync(string[] args)
    {
        var result = _root.Parse(args);
        if (result.Errors.Count > 0)
        {
            foreach (var error in result.Errors) Console.Error.WriteLine($"error: {error.Message}");
            Console.Error.WriteLine($"see '{result.CommandResult.Command.Name} --help'");
            return new Parsed("", [], 2);
        }

        var code = await result.InvokeAsync();
        if (_selected is null) return new Parsed("", [], code); // --help printed
        if (result.CommandResult.Command == _root)
        {
            if (DefaultCommand is null)
            {
                Console.Error.WriteLine($"error: a command is required (commands: {Commands}; see --help)");
                return new Parsed("", [], 2);
            }

            // No command word: the arguments are configuration overrides, and a bare word is a mistyped command.
            if (args.FirstOrDefault(a => !a.StartsWith('-') && !a.Contains('=', StringComparison.Ordinal) && !IsOverrideValue(args, a)) is { } word)
            {
                Console.Error.WriteLine($"error: unknown command '{word}' (commands: {Commands}; see --help)");
                return new Parsed("", [], 2);
            }

            return new Parsed(DefaultCommand, args, null);
        }

        var at = Array.IndexOf(args, _selected);
        return new Parsed(_selected, args[(at + 1)..], null);
    }

    /// <summary>Whether <paramref name="word"/> is the value of a "--Key value" override before it.</summary>
    private static bool IsOverrideValue(string[] args, string word)
    {
        var at = Array.IndexOf(args, word);
        return at > 0 && args[at - 1].StartsWith("--", StringComparison.Ordinal) && !args[at - 1].Contains('=', StringComparison.Ordinal);
    }

    /// <summary>
    /// A tool command: its options (exit 2 when they are wrong, with the usage), then its run; an error it expects is
    /// one line and exit 3.
    /// </summary>
    public static async Task<int> RunToolAsync<T>(Func<T> parse, string usage, Func<T, Task<int>> run, Func<Exception, bool> expected) where T : class
    {
        if (ParseOptions(parse, usage) is not { } options) return 2;
        try
        {
            return await run(options);
        }
        catch (Exception e) when (expected(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 3;
        }
    }

    /// <summary>A command's options, or null after printing the problem and the usage (the caller exits with 2).</summary>
    public static T? ParseOptions<T>(Func<T> parse, string usage) where T : class
    {
        try
        {
            return parse();
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            Console.Error.WriteLine(usage);
            return null;
        }
    }
}
