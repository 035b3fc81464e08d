using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using static Orleans.Pipeline.Tests.Deploy.Manifests;

namespace Orleans.Pipeline.Tests.Deploy;

/// <summary>
/// <c>deploy/Dockerfile</c>, checked without a container engine: its stages, its user, the ports it exposes against
/// the ones the manifests use, and that it starts the silo with a command the silo has.
/// </summary>
public sealed partial class DockerfileTests
{
    private static readonly string Dockerfile = Path.Combine(Root, "deploy", "Dockerfile");

    /// <summary>Instructions, continuation lines joined, comments dropped.</summary>
    private static List<(string Instruction, string Arguments)> Instructions()
    {
        var text = File.ReadAllText(Dockerfile).Replace("\\\n", " ", StringComparison.Ordinal);
        return text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => l.Split(' ', 2) is var parts ? (parts[0].ToUpperInvariant(), parts.Length > 1 ? parts[1].Trim() : "") : default).ToList();
    }

    [Fact]
    public void It_builds_with_the_sdk_image_and_runs_on_the_aspnet_image_as_a_non_root_user()
    {
        var instructions = Instructions();
        var stages = instructions.Where(i => i.Instruction == "FROM").Select(i => i.Arguments).ToList();
        Assert.Equal(2, stages.Count);
        Assert.Matches(@"^mcr\.microsoft\.com/dotnet/sdk:\S+ AS build$", stages[0]);
        Assert.Matches(@"^mcr\.microsoft\.com/dotnet/aspnet:\S+ AS runtime$", stages[1]);
        var runtime = instructions.SkipWhile(i => !(i.Instruction == "FROM" && i.Arguments.EndsWith("AS runtime", StringComparison.Ordinal))).ToList();
        Assert.Contains(runtime, i => i.Instruction == "COPY" && i.Arguments.StartsWith("--from=build ", StringComparison.Ordinal));
        Assert.DoesNotContain(runtime, i => i.Instruction == "COPY" && !i.Arguments.StartsWith("--from=build ", StringComparison.Ordinal)); // nothing unbuilt in the image
        var user = runtime.Last(i => i.Instruction == "USER").Arguments;
        Assert.Matches("^[0-9]+(:[0-9]+)?$", user); // by number, so that runAsNonRoot can verify it
        Assert.NotEqual("0", user.Split(':')[0]);

        // The restore layer copies every project the silo references (directly or not) before the sources.
        var build = instructions.TakeWhile(i => !(i.Instruction == "FROM" && i.Arguments.EndsWith("AS runtime", StringComparison.Ordinal))).ToList();
        var copied = build.Where(i => i.Instruction == "COPY").Select(i => i.Arguments.Split(' ')[0]).ToHashSet();
        var restore = build.FindIndex(i => i.Instruction == "RUN" && i.Arguments.Contains("dotnet restore silo/Orleans.Pipeline.Silo.csproj", StringComparison.Ordinal));
        Assert.True(restore > 0, "no restore of the silo");
        foreach (var project in ProjectClosure(Path.Combine(Root, "silo", "Orleans.Pipeline.Silo.csproj")))
        {
            var relative = Path.GetRelativePath(Root, project).Replace('\\', '/');
            Assert.True(copied.Contains(relative), $"the Dockerfile does not copy {relative} before restoring");
        }

        Assert.Contains(build, i => i.Instruction == "RUN" && i.Arguments.Contains("dotnet publish silo/Orleans.Pipeline.Silo.csproj", StringComparison.Ordinal));
        Assert.True(File.Exists(Path.Combine(Root, ".dockerignore")));
    }

    [Fact]
    public async Task It_exposes_the_ports_the_manifests_use_and_starts_the_silo_with_one_of_its_commands()
    {
        var instructions = Instructions();
        var exposed = instructions.Where(i => i.Instruction == "EXPOSE").SelectMany(i => i.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(int.Parse).Order().ToList();
        foreach (var overlay in Overlays)
        {
            var ports = Container(Silo(await LoadAsync(overlay))).Ports.Select(p => p.ContainerPort).Order().ToList();
            Assert.Equal(ports, exposed);
        }

        var entrypoint = JsonSerializer.Deserialize<string[]>(instructions.Single(i => i.Instruction == "ENTRYPOINT").Arguments)!;
        var assembly = XDocument.Load(Path.Combine(Root, "silo", "Orleans.Pipeline.Silo.csproj")).Descendants("AssemblyName").Single().Value;
        Assert.Equal(["dotnet", $"/app/{assembly}.dll"], entrypoint);
        Assert.Contains(instructions, i => i.Instruction == "RUN" && i.Arguments.Contains("-o /app", StringComparison.Ordinal));
        var command = JsonSerializer.Deserialize<string[]>(instructions.Single(i => i.Instruction == "CMD").Arguments)!;
        Assert.Equal(["run"], command);
        Assert.Contains(command[0], await SiloCommandsAsync());
    }

    private static HashSet<string> ProjectClosure(string project)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([Path.GetFullPath(project)]);
        while (pending.TryPop(out var current))
        {
            if (!found.Add(current)) continue;
            foreach (var reference in XDocument.Load(current).Descendants("ProjectReference"))
                pending.Push(Path.GetFullPath(Path.Combine(Path.GetDirectoryName(current)!, reference.Attribute("Include")!.Value)));
        }

        return found;
    }
}
