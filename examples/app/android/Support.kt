package com.example.support

import com.statsig.androidsdk.Statsig

fun smartDefaults(): Boolean {
    return Statsig.checkGate("settings_spellcheck")
}
