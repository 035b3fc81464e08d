namespace Orleans.Pipeline;

/// <summary>
/// A silo cannot start for a reason its operator must fix (the database unreachable, its schema at another version):
/// the message says what and where. Hosts report it as it is, however deep in the start-up's exceptions it sits.
/// </summary>
public class PipelineStartupException(string message, Exception? inner = null) : Exception(message, inner);
