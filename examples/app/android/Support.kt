package com.example.support

import com.statsig.androidsdk.Statsig

fun smartDefaults(): Boolean {
    return Statsig.checkGate("support_smart_defaults")
}
