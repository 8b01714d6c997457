/*
 * Runs a Jenkins shared-library step (vars/*.groovy) outside Jenkins, for tests.
 *
 *   groovy jenkins_harness.groovy STEP_FILE CONFIG_JSON ENV_JSON CREDENTIALS_JSON
 *
 * The step file is parsed and run by Groovy itself (Jenkins 2.x runs Groovy 2.4, like Debian's groovy); only
 * the pipeline steps it uses are provided, with Jenkins's semantics: `sh` runs `sh -xe` on the script with the
 * environment of the enclosing withEnv/withCredentials blocks (`PATH+NAME=dir` prepends to PATH), returns
 * stdout or the status when asked and fails otherwise; `error` ends the step; `unstable` is recorded.
 * Prints one JSON line on stdout: {"result": ..., "error": ..., "unstable": [...]}.
 */
import groovy.json.JsonOutput
import groovy.json.JsonSlurper

class StepError extends RuntimeException {
    StepError(String message) { super(message) }
}

def stepFile = new File(args[0])
Map config = new JsonSlurper().parseText(args[1]) as Map
Map jenkinsEnv = new JsonSlurper().parseText(args[2]) as Map
Map credentials = new JsonSlurper().parseText(args[3]) as Map

List<Map> scopes = []
List<String> unstable = []

def environment = {
    Map<String, String> merged = new LinkedHashMap<String, String>(System.getenv())
    jenkinsEnv.each { k, v -> merged[k as String] = v as String }
    scopes.each { Map scope ->
        scope.each { k, v ->
            String name = k as String
            int plus = name.indexOf('+')
            if (plus > 0) {
                String base = name.substring(0, plus)
                merged[base] = "${v}${File.pathSeparator}${merged[base] ?: ''}".toString()
            } else {
                merged[name] = v as String
            }
        }
    }
    merged
}

def withScope = { Map scope, Closure body ->
    scopes.add(scope)
    try {
        return body()
    } finally {
        scopes.remove(scopes.size() - 1)
    }
}

def binding = new Binding()
binding.setVariable('env', jenkinsEnv)
binding.setVariable('withEnv', { List entries, Closure body ->
    Map scope = [:]
    entries.each { String entry ->
        int eq = entry.indexOf('=')
        scope[entry.substring(0, eq)] = entry.substring(eq + 1)
    }
    withScope(scope, body)
})
binding.setVariable('string', { Map spec -> [id: spec.credentialsId, variable: spec.variable] })
binding.setVariable('withCredentials', { List specs, Closure body ->
    Map scope = [:]
    specs.each { Map spec ->
        if (!credentials.containsKey(spec.id)) {
            throw new StepError("Could not find credentials entry with ID '${spec.id}'")
        }
        scope[spec.variable] = credentials[spec.id]
    }
    withScope(scope, body)
})
binding.setVariable('echo', { Object message -> System.err.println("[echo] ${message}") })
binding.setVariable('error', { Object message -> throw new StepError(message as String) })
binding.setVariable('unstable', { Object message -> unstable.add(message as String) })
binding.setVariable('sh', { Map spec ->
    File script = File.createTempFile('jenkins-sh', '.sh')
    try {
        script.text = spec.script as String
        List<String> envList = environment().collect { k, v -> "${k}=${v}".toString() }
        Process process = ['sh', '-xe', script.absolutePath].execute(envList, new File('.'))
        StringBuilder out = new StringBuilder()
        Thread errPump = Thread.start { process.errorStream.eachLine { System.err.println(it) } }
        process.inputStream.eachLine { out.append(it).append('\n') }
        int code = process.waitFor()
        errPump.join()
        if (spec.returnStatus) {
            return code
        }
        if (code != 0) {
            throw new StepError("script returned exit code ${code}")
        }
        if (spec.returnStdout) {
            return out.toString()
        }
        System.err.print(out.toString())
        return null
    } finally {
        script.delete()
    }
})

Map outcome = [result: null, error: null, unstable: unstable]
try {
    Script step = new GroovyShell(binding).parse(stepFile)
    outcome.result = step.invokeMethod('call', [config] as Object[])
} catch (StepError e) {
    outcome.error = e.message
}
println JsonOutput.toJson(outcome)
