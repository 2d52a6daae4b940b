// Passkey sign-in (login page) and registration (account page). Served from this origin:
// the Content-Security-Policy allows no inline script.
(() => {
  'use strict';
  const supported =
    window.PublicKeyCredential &&
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function' &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function';

  function showError(message) {
    const box = document.getElementById('passkey-error');
    if (box) {
      box.textContent = message;
      box.hidden = false;
    }
  }

  async function post(url, csrf, body) {
    const response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(data.message || 'The request failed.');
    }
    return data;
  }

  function wire(button, action) {
    if (!button || !supported) return;
    button.hidden = false;
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        await action(button.dataset.csrf, button.dataset);
      } catch (e) {
        showError(e && e.name === 'NotAllowedError' ? 'The passkey request was cancelled.' : e.message);
      } finally {
        button.disabled = false;
      }
    });
  }

  wire(document.getElementById('passkey-login'), async (csrf, data) => {
    const { publicKey } = await post('/login/passkey/options', csrf);
    const credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(publicKey),
    });
    const result = await post('/login/passkey', csrf, {
      credential: credential.toJSON(),
      return_to: data.returnTo || '',
    });
    window.location.assign(result.redirect);
  });

  wire(document.getElementById('passkey-register'), async (csrf) => {
    const { publicKey } = await post('/account/passkeys/options', csrf);
    const credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(publicKey),
    });
    const nameField = document.getElementById('passkey-name');
    await post('/account/passkeys', csrf, {
      name: nameField ? nameField.value : '',
      credential: credential.toJSON(),
    });
    window.location.assign('/account?notice=passkey_added');
  });
})();
