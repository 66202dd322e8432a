// The -javaagent LocalStack always passes to DynamoDB Local. LocalStack's real agent (downloaded from GitHub) only
// lifts DynamoDB Local's limit of 20 GSIs per table; this template stays far below it, so the agent does nothing.
public class NoopAgent {
    public static void premain(String args, java.lang.instrument.Instrumentation instrumentation) {}
}
