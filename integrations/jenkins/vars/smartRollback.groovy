/*
 * Smart Rollback step for Jenkins pipelines (a global variable of a shared library).
 *
 *   def id = smartRollback(action: 'register', target: 'kubernetes/prod-eu/shop/checkout', revision: env.GIT_COMMIT)
 *   sh 'kubectl -n shop set image deployment/checkout checkout=registry.example.com/shop/checkout:$GIT_COMMIT'
 *   smartRollback(action: 'gate', deploymentId: id, timeout: '20m')
 *
 * Actions: register (returns the deployment id), gate (returns the verdict; fails the build unless healthy),
 * registerAndGate, markGood and markBad (deploymentId, or target and revision; reason required).
 * The reactor's URL comes from `url` or env.SMART_ROLLBACK_URL; its token from the Jenkins "secret text"
 * credential `credentialsId` (default 'smart-rollback-token'), never from the URL or a parameter.
 *
 * The shell scripts are single-quoted Groovy strings: values reach them only as environment variables, so
 * neither the token nor a crafted parameter is ever spliced into a command line.
 */

def call(Map config = [:]) {
    String action = config.action ?: 'registerAndGate'
    List<String> known = ['register', 'gate', 'registerAndGate', 'markGood', 'markBad']
    if (!known.contains(action)) {
        error("smartRollback: action must be one of ${known.join(', ')}, not '${action}'")
    }
    String credentialsId = config.credentialsId ?: 'smart-rollback-token'
    withCredentials([string(credentialsId: credentialsId, variable: 'SMART_ROLLBACK_TOKEN')]) {
        withEnv(environmentFor(config)) {
            installCli()
            if (action == 'register') {
                return register(config)
            }
            if (action == 'gate') {
                return gate(config, config.deploymentId as String)
            }
            if (action == 'registerAndGate') {
                return gate(config, register(config))
            }
            return mark(config, action == 'markGood' ? 'good' : 'bad')
        }
    }
}

private List<String> environmentFor(Map config) {
    String venv = "${env.WORKSPACE ?: '.'}/.smart-rollback-venv"
    Map<String, Object> values = [
        'SMART_ROLLBACK_URL'     : config.url ?: env.SMART_ROLLBACK_URL,
        'SR_TARGET'              : config.target,
        'SR_REVISION'            : config.revision,
        'SR_PREVIOUS'            : config.previousRevision,
        'SR_PIPELINE_URL'        : config.pipelineUrl ?: env.BUILD_URL,
        'SR_ACTOR'               : config.actor,
        'SR_REASON'              : config.reason,
        'SR_TIMEOUT'             : config.timeout ?: '30m',
        'SR_PROGRESS_EVERY'      : config.progressEvery ?: '30s',
        'SR_PACKAGE'             : config.packageSpec ?: 'smart-rollback',
        'SR_IDEMPOTENCY_KEY'     : "jenkins:${env.JOB_NAME}:${env.BUILD_NUMBER}:${config.target}",
        'SR_VENV'                : venv,
        'PATH+SMART_ROLLBACK'    : "${venv}/bin",
    ]
    List<String> entries = []
    for (String name in values.keySet()) {
        Object value = values[name]
        if (value != null && "${value}" != '') {
            entries.add("${name}=${value}".toString())
        }
    }
    return entries
}

private void installCli() {
    sh(label: 'smart-rollback: install the CLI', script: '''
        if ! command -v smart-rollback >/dev/null 2>&1; then
            python3 -m venv "$SR_VENV"
            "$SR_VENV/bin/pip" install --quiet --disable-pip-version-check "$SR_PACKAGE"
        fi
    ''')
}

private String register(Map config) {
    if (!config.target || !config.revision) {
        error('smartRollback: register needs target (platform/cluster/namespace/name) and revision')
    }
    String id = sh(label: 'smart-rollback: register the deploy', returnStdout: true, script: '''
        set -- --target "$SR_TARGET" --revision "$SR_REVISION" --idempotency-key "$SR_IDEMPOTENCY_KEY"
        if [ -n "${SR_PREVIOUS:-}" ]; then set -- "$@" --previous "$SR_PREVIOUS"; fi
        if [ -n "${SR_PIPELINE_URL:-}" ]; then set -- "$@" --pipeline-url "$SR_PIPELINE_URL"; fi
        if [ -n "${SR_ACTOR:-}" ]; then set -- "$@" --actor "$SR_ACTOR"; fi
        smart-rollback deploy register "$@"
    ''').trim()
    echo "smartRollback: registered deployment ${id}"
    return id
}

private String gate(Map config, String deploymentId) {
    if (!deploymentId) {
        error('smartRollback: gate needs deploymentId (what register returned)')
    }
    int code = 0
    withEnv(["SR_DEPLOYMENT_ID=${deploymentId}".toString()]) {
        code = sh(label: 'smart-rollback: wait for the verdict', returnStatus: true, script: '''
            smart-rollback deploy gate --deployment "$SR_DEPLOYMENT_ID" --timeout "$SR_TIMEOUT" --progress-every "$SR_PROGRESS_EVERY"
        ''') as int
    }
    Map<Integer, String> verdicts = [0: 'healthy', 10: 'rolled_back', 11: 'bad', 12: 'insufficient_data',
                                     13: 'timeout', 14: 'superseded']
    String verdict = verdicts[code] ?: 'error'
    if (code == 0) {
        return verdict
    }
    if (code == 12 && config.allowInsufficientData) {
        unstable("smartRollback: deployment ${deploymentId}: insufficient data, health not confirmed")
        return verdict
    }
    error("smartRollback: deployment ${deploymentId} is ${verdict} (exit ${code})")
}

private String mark(Map config, String verdict) {
    if (!config.reason) {
        error('smartRollback: markGood and markBad need a reason (it goes to the audit trail)')
    }
    if (!config.deploymentId && !(config.target && config.revision)) {
        error('smartRollback: mark needs deploymentId, or target and revision')
    }
    withEnv(["SR_DEPLOYMENT_ID=${config.deploymentId ?: ''}".toString(), "SR_VERDICT=${verdict}".toString()]) {
        sh(label: "smart-rollback: mark ${verdict}", script: '''
            if [ -n "${SR_DEPLOYMENT_ID:-}" ]; then
                set -- --deployment "$SR_DEPLOYMENT_ID"
            else
                set -- --target "$SR_TARGET" --revision "$SR_REVISION"
            fi
            if [ -n "${SR_ACTOR:-}" ]; then set -- "$@" --actor "$SR_ACTOR"; fi
            smart-rollback deploy "mark-$SR_VERDICT" "$@" --reason "$SR_REASON"
        ''')
    }
    return verdict
}
