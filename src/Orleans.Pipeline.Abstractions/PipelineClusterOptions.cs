namespace Orleans.Pipeline;

/// <summary>Where a deployment keeps its state and streams.</summary>
public enum PipelineMode
{
    /// <summary>One process: localhost clustering, memory streams, grain state in a local SQLite file.</summary>
    Embedded = 0,

    /// <summary>
    /// Several silos with PostgreSQL behind them: membership, grain state, reminders, durable stream queues and the
    /// results table.
    /// </summary>
    PostgreSql = 1,
}

/// <summary>
/// The deployment settings silos, clients and the gateway share: the configuration section <c>Pipeline</c>
/// (<c>Pipeline:Mode</c>, <c>Pipeline:ConnectionString</c>, …; from environment variables as <c>Pipeline__Mode</c>).
/// </summary>
public sealed class PipelineClusterOptions
{
    /// <summary>The configuration section these options bind to.</summary>
    public const string Section = "Pipeline";

    /// <summary>Embedded (default) or PostgreSql.</summary>
    public PipelineMode Mode { get; set; } = PipelineMode.Embedded;

    /// <summary>PostgreSQL mode: an Npgsql connection string (falls back to <c>ConnectionStrings:Pipeline</c>).</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Silos and clients with the same cluster id form one cluster.</summary>
    public string ClusterId { get; set; } = "orleans-pipeline";

    /// <summary>Identifies the deployment's durable data (state, reminders, stream queues) across cluster ids.</summary>
    public string ServiceId { get; set; } = "orleans-pipeline";

    /// <summary>Stream queues (partitions); silos and clients must agree.</summary>
    public int StreamQueues { get; set; } = 8;

    /// <summary>PostgreSQL mode: how the durable event queues behave.</summary>
    public DurableStreamOptions Streams { get; set; } = new();

    /// <summary>TLS between silos, and between clients and silos (off unless a certificate is set).</summary>
    public ClusterTlsOptions Tls { get; set; } = new();

    /// <summary>
    /// Whether a silo listens on every interface; by default it listens only on the address it advertises (which
    /// Kubernetes sets to the pod's IP), so nothing else on the host reaches the cluster's ports.
    /// </summary>
    public bool ListenOnAllInterfaces { get; set; }

    /// <summary>Every problem with these settings, one line each.</summary>
    public IEnumerable<string> Validate()
    {
        if (!Enum.IsDefined(Mode)) yield return $"Pipeline:Mode must be {string.Join(" or ", Enum.GetNames<PipelineMode>())}";
        if (Mode == PipelineMode.PostgreSql && string.IsNullOrWhiteSpace(ConnectionString))
            yield return "Pipeline:Mode is PostgreSql but no connection string is set (Pipeline:ConnectionString or ConnectionStrings:Pipeline)";
        if (string.IsNullOrWhiteSpace(ClusterId)) yield return "Pipeline:ClusterId must not be empty";
        if (string.IsNullOrWhiteSpace(ServiceId)) yield return "Pipeline:ServiceId must not be empty";
        if (StreamQueues is < 1 or > 1024) yield return "Pipeline:StreamQueues must be in [1, 1024]";
        foreach (var problem in Streams.Validate()) yield return problem;
        foreach (var problem in Tls.Validate()) yield return problem;
    }
}

/// <summary>
/// Mutual TLS for the cluster's own connections (silo to silo, client to silo): <c>Pipeline:Tls</c>. Every silo and
/// client presents its certificate and accepts only peers whose certificate chains to <see cref="CaCertificatePath"/>
/// (or, without a CA, only the very certificate it holds itself: one certificate shared by the whole cluster).
/// </summary>
public sealed class ClusterTlsOptions
{
    /// <summary>A PFX (PKCS#12) file with this process's certificate and private key; TLS is on when it is set.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>The PFX file's password.</summary>
    public string? CertificatePassword { get; set; }

    /// <summary>The CA certificate (PEM or DER) peers' certificates must chain to.</summary>
    public string? CaCertificatePath { get; set; }

    /// <summary>Whether TLS is on.</summary>
    public bool Enabled => !string.IsNullOrWhiteSpace(CertificatePath);

    /// <summary>Every problem with these settings.</summary>
    public IEnumerable<string> Validate()
    {
        if (!Enabled)
        {
            if (!string.IsNullOrWhiteSpace(CaCertificatePath)) yield return "Pipeline:Tls:CaCertificatePath is set but Pipeline:Tls:CertificatePath is not";
            yield break;
        }

        if (!File.Exists(CertificatePath)) yield return $"Pipeline:Tls:CertificatePath '{CertificatePath}' does not exist";
        if (CaCertificatePath is { Length: > 0 } ca && !File.Exists(ca)) yield return $"Pipeline:Tls:CaCertificatePath '{ca}' does not exist";
    }
}

/// <summary>Tuning of the durable (PostgreSQL) event queues.</summary>
public sealed class DurableStreamOptions
{
    /// <summary>
    /// How long a dequeued message stays leased to the silo that read it; when that silo dies, its messages are
    /// delivered again after this. Longer than a batch can spend waiting in a silo's cache.
    /// </summary>
    public TimeSpan VisibilityTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long an accepted event may wait for delivery before it is given up (as a dead letter, never silently):
    /// long enough to ride out an outage of the whole cluster.
    /// </summary>
    public TimeSpan ExpiryTimeout { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Leases (deliveries) of one message before it is a dead letter.</summary>
    public int MaxAttempts { get; set; } = 20;

    /// <summary>Messages each silo holds per queue between the database and the grains.</summary>
    public int CacheSize { get; set; } = 1024;

    /// <summary>How often a silo polls each queue it owns.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>How long stream dead letters are kept.</summary>
    public TimeSpan DeadLetterRetention { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Every problem with these settings.</summary>
    public IEnumerable<string> Validate()
    {
        if (VisibilityTimeout < TimeSpan.FromSeconds(1)) yield return "Pipeline:Streams:VisibilityTimeout must be at least 1 second";
        if (ExpiryTimeout < VisibilityTimeout) yield return "Pipeline:Streams:ExpiryTimeout must be at least the visibility timeout";
        if (ExpiryTimeout > TimeSpan.FromDays(365)) yield return "Pipeline:Streams:ExpiryTimeout must be at most 365 days";
        if (MaxAttempts < 1) yield return "Pipeline:Streams:MaxAttempts must be at least 1";
        if (CacheSize < 16) yield return "Pipeline:Streams:CacheSize must be at least 16";
        if (PollInterval <= TimeSpan.Zero) yield return "Pipeline:Streams:PollInterval must be positive";
    }
}
