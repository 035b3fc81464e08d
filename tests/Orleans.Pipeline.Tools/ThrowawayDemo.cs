using System.Diagnostics;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tools;

/// <summary>
/// <c>demo</c>: the silo's own demo, run as a child process with this terminal. With <c>--postgres</c> and no
/// connection string configured, a throwaway local PostgreSQL server (fsync on) is started first and handed to it,
/// and removed afterwards. The demo's options are the silo's (it checks them).
/// </summary>
internal static class ThrowawayDemo
{
    public static async Task<int> RunAsync(string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { UseShellExecute = false };
        start.ArgumentList.Add(Executables.Silo);
        start.ArgumentList.Add("demo");
        foreach (var argument in args) start.ArgumentList.Add(argument);
        LocalPostgres? throwaway = null;
        var configured = !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("Pipeline__ConnectionString"))
            || !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable("ConnectionStrings__Pipeline"));
        try
        {
            if (args.Contains("--postgres") && !configured)
            {
                Console.WriteLine("starting a throwaway PostgreSQL server (durable: fsync on) …");
                try
                {
                    throwaway = await LocalPostgres.StartAsync(durable: true);
                }
                catch (InvalidOperationException e)
                {
                    Console.Error.WriteLine($"error: {e.Message}");
                    return 3;
                }

                start.Environment["Pipeline__ConnectionString"] = throwaway.ConnectionString();
            }

            using var demo = Process.Start(start) ?? throw new InvalidOperationException("could not start the silo's demo");
            // Ctrl-C reaches the child too (same process group); this process waits for it to finish its report.
            Console.CancelKeyPress += (_, e) => e.Cancel = true;
            await demo.WaitForExitAsync();
            return demo.ExitCode;
        }
        finally
        {
            if (throwaway is not null) await throwaway.DisposeAsync();
        }
    }
}

/// <summary>The executables the tools run as processes.</summary>
internal static class Executables
{
    /// <summary>The silo (copied beside the tools by the project reference).</summary>
    public static string Silo { get; } = Path.Combine(AppContext.BaseDirectory, "orleans-pipeline-silo.dll");

    /// <summary>The tools themselves (gateway publishers and producers).</summary>
    public static string Tools { get; } = typeof(Executables).Assembly.Location;
}
