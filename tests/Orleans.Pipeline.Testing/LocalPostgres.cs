using System.Diagnostics;
using Npgsql;

namespace Orleans.Pipeline.Testing;

/// <summary>
/// A throwaway PostgreSQL server for tests and demos: <c>initdb</c> into a temporary directory, started with
/// <c>pg_ctl</c> on a free port of 127.0.0.1, stopped and deleted on dispose. When the process runs as root the
/// server runs as the <c>postgres</c> system user (PostgreSQL refuses root). Binaries are found through
/// <c>PIPELINE_PG_BIN</c>, then <c>PATH</c>, then <c>/usr/lib/postgresql/*/bin</c>; when there are none the start
/// fails with a message saying how to install them.
/// </summary>
public sealed class LocalPostgres : IAsyncDisposable
{
    /// <summary>What to tell someone whose machine has no PostgreSQL.</summary>
    public const string InstallHint =
        "PostgreSQL 15+ server binaries (initdb, pg_ctl) were not found on PATH, in /usr/lib/postgresql/*/bin or in " +
        "$PIPELINE_PG_BIN. Install them (Debian/Ubuntu: apt-get install -y postgresql) or point PIPELINE_PG_BIN at their directory.";

    private readonly string _binDirectory;
    private readonly string _dataDirectory;
    private readonly bool _asPostgresUser;
    private string _settings = "";
    private int _stopped;

    private LocalPostgres(string binDirectory, string root, int port, bool asPostgresUser)
    {
        _binDirectory = binDirectory;
        Root = root;
        _dataDirectory = Path.Combine(root, "data");
        Port = port;
        _asPostgresUser = asPostgresUser;
    }

    /// <summary>The directory holding the cluster's data and log.</summary>
    public string Root { get; }

    /// <summary>
    /// CPU time the server has used so far (Linux): the postmaster, the backends that ended (reaped by it) and those
    /// still running. For per-core figures that count the database's work, not only the client's.
    /// </summary>
    public TimeSpan CpuTime()
    {
        var pidFile = Path.Combine(_dataDirectory, "postmaster.pid");
        if (!OperatingSystem.IsLinux() || !File.Exists(pidFile)) return TimeSpan.Zero;
        var postmaster = int.Parse(File.ReadLines(pidFile).First(), System.Globalization.CultureInfo.InvariantCulture);
        long ticks = 0;
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid)) continue;
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(directory, "stat"));
            }
            catch (IOException)
            {
                continue; // ended meanwhile
            }

            // Fields after the command (which may hold spaces) start after its closing parenthesis: state ppid … utime(14) stime(15) cutime(16) cstime(17).
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var parent = int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
            if (pid != postmaster && parent != postmaster) continue;
            ticks += long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
            if (pid == postmaster)
                ticks += long.Parse(fields[13], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[14], System.Globalization.CultureInfo.InvariantCulture);
        }

        return TimeSpan.FromSeconds(ticks / 100.0); // USER_HZ
    }

    /// <summary>The port the server listens on, on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The server's log file.</summary>
    public string LogFile => Path.Combine(Root, "server.log");

    /// <summary>A connection string for <paramref name="database"/> as the superuser <c>postgres</c>.</summary>
    public string ConnectionString(string database = "postgres") => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = "postgres",
        Database = database,
        Timeout = 10,
    }.ToString();

    /// <summary>
    /// Creates and starts a server. <paramref name="durable"/> keeps fsync and synchronous commit on (figures worth
    /// quoting); tests turn both off, which is faster and loses nothing unless the machine itself crashes.
    /// </summary>
    public static async Task<LocalPostgres> StartAsync(bool durable = false, CancellationToken cancellationToken = default)
    {
        var bin = FindBinaries() ?? throw new InvalidOperationException(InstallHint);
        var asPostgresUser = Environment.UserName == "root";
        var root = Path.Combine(Path.GetTempPath(), $"orleans-pipeline-pg-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        if (asPostgresUser)
        {
            await RunAsync("chown", ["postgres:postgres", root], cancellationToken);
        }

        var server = new LocalPostgres(bin, root, FreePorts.Next(), asPostgresUser);
        try
        {
            await server.PgAsync("initdb", ["-D", server._dataDirectory, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"], cancellationToken);
            var settings = $"-p {server.Port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c max_connections=400 " +
                "-c shared_buffers=256MB -c max_wal_size=2GB " +
                (durable ? "" : "-c fsync=off -c synchronous_commit=off -c full_page_writes=off");
            server._settings = settings;
            await server.PgAsync("pg_ctl", ["-D", server._dataDirectory, "-l", server.LogFile, "-o", settings, "-w", "-t", "60", "start"], cancellationToken);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Stops the server (fast shutdown: open connections are cut) without deleting anything; <see cref="ResumeAsync"/> starts it again.</summary>
    public Task PauseAsync(CancellationToken cancellationToken = default) =>
        PgAsync("pg_ctl", ["-D", _dataDirectory, "-m", "fast", "-w", "stop"], cancellationToken);

    /// <summary>Starts the server again after <see cref="PauseAsync"/>, on the same port.</summary>
    public Task ResumeAsync(CancellationToken cancellationToken = default) =>
        PgAsync("pg_ctl", ["-D", _dataDirectory, "-l", LogFile, "-o", _settings, "-w", "-t", "60", "start"], cancellationToken);

    /// <summary>Creates an empty database and returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string name, CancellationToken cancellationToken = default)
    {
        await using var connection = new NpgsqlConnection(ConnectionString());
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
        return ConnectionString(name);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) == 1) return;
        try
        {
            if (File.Exists(Path.Combine(_dataDirectory, "postmaster.pid")))
                await PgAsync("pg_ctl", ["-D", _dataDirectory, "-m", "immediate", "-w", "stop"], CancellationToken.None);
        }
        catch (InvalidOperationException)
        {
            // Already stopped; the directory goes either way.
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private Task PgAsync(string tool, string[] arguments, CancellationToken cancellationToken)
    {
        var path = Path.Combine(_binDirectory, tool);
        return _asPostgresUser
            ? RunAsync("runuser", ["-u", "postgres", "--", path, .. arguments], cancellationToken)
            : RunAsync(path, arguments, cancellationToken);
    }

    private static async Task RunAsync(string file, string[] arguments, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"{Path.GetFileName(file)} {string.Join(' ', arguments)} exited with {process.ExitCode}: {(await error).Trim()} {(await output).Trim()}");
        }
    }

    private static string? FindBinaries()
    {
        static bool Has(string? directory) => directory is not null && File.Exists(Path.Combine(directory, "initdb")) && File.Exists(Path.Combine(directory, "pg_ctl"));

        var configured = Environment.GetEnvironmentVariable("PIPELINE_PG_BIN");
        if (Has(configured)) return configured;
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            if (Has(directory)) return directory;
        }

        const string Packaged = "/usr/lib/postgresql";
        if (!Directory.Exists(Packaged)) return null;
        return Directory.GetDirectories(Packaged)
            .Select(d => Path.Combine(d, "bin"))
            .Where(Has)
            .OrderByDescending(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var major) ? major : 0)
            .FirstOrDefault();
    }
}
