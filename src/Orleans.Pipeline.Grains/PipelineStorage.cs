namespace Orleans.Pipeline.Grains;

/// <summary>Names of the storage providers the grains use; the hosting layer decides what backs them.</summary>
public static class PipelineStorage
{
    /// <summary>Grain storage for key grain state.</summary>
    public const string StateStorage = "pipeline-state";
}
